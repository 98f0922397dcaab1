// Turns the measured rows into the three outputs: a plain-text table (stdout), a markdown report with
// the machine it ran on, and an SVG bar chart of each ratio against its goal.
import { readFileSync } from 'node:fs'
import { availableParallelism, totalmem } from 'node:os'

export function machineInfo () {
  let cpuModel = 'unknown'
  try {
    cpuModel = (/^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? cpuModel
  } catch {}
  return {
    cpuModel,
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`
  }
}

const fmt = {
  num: (value, digits = 0) => (value === undefined || value === null || Number.isNaN(value) ? '' : value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })),
  ms: (value) => (value === undefined || value === null ? '' : String(value))
}

const HEADER = ['scenario', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'µs/req', 'compared with', 'its µs/req']
const NUMERIC = new Set([1, 2, 3, 4, 5, 6, 8])

/**
 * The table's lines for one row, as cells: its own figures, then one line per comparison (the ratio
 * and the CPU per request of what it is compared with), so every ratio has both CPU figures beside it.
 */
function lines (row) {
  const own = [
    row.scenario,
    row.connections === undefined ? '' : String(row.connections),
    fmt.num(row.reqPerSec),
    fmt.ms(row.p50),
    fmt.ms(row.p99),
    row.errors === undefined ? '' : String(row.errors),
    row.usPerRequest === undefined ? '' : String(row.usPerRequest)
  ]
  const comparisons = row.comparisons ?? []
  if (comparisons.length === 0) return [[...own, row.value ?? row.note ?? '', '']]
  return comparisons.map((comparison, index) => [
    ...(index === 0 ? own : own.map(() => '')),
    comparison.text,
    comparison.referenceUsPerRequest === undefined ? '' : String(comparison.referenceUsPerRequest)
  ])
}

export function textTable (rows) {
  const body = rows.flatMap(lines)
  const widths = HEADER.map((title, column) => Math.max(title.length, ...body.map((line) => line[column].length)))
  const line = (values) => values.map((value, column) => (NUMERIC.has(column) ? value.padStart(widths[column]) : value.padEnd(widths[column]))).join('  ').trimEnd()
  return [line(HEADER), widths.map((width) => '-'.repeat(width)).join('  '), ...body.map(line)].join('\n')
}

export function markdownTable (rows) {
  return [
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map((_, column) => (NUMERIC.has(column) ? '---:' : '---')).join('|')}|`,
    ...rows.flatMap(lines).map((cells) => `| ${cells.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`)
  ].join('\n')
}

/** "AMD EPYC, 2 cores, 24 GiB, Node v20.20.2, linux x64": the machine a report names. */
export const machineName = (machine) => `${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}`

export function markdownReport (report) {
  const { meta, rows, runs } = report
  const runLines = [
    '| run | round | conns | req/s | p50 ms | p99 ms | errors | server CPU % | server CPU µs/req | load-gen CPU % | database CPU % | other processes CPU % |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...runs.map((run) => `| ${run.label} | ${run.round ?? ''} | ${run.connections} | ${fmt.num(run.reqPerSec)} | ${run.p50} | ${run.p99} | ${run.errors} | ${run.serverCpu ?? ''} | ${run.serverCpuPerRequestUs ?? ''} | ${run.loadgenCpu ?? ''} | ${run.databaseCpu ?? ''} | ${run.othersCpu ?? ''} |`)
  ]
  return [
    `# Benchmark: ${meta.database}`,
    '',
    `Machine: ${machineName(meta.machine)}. Run ${meta.date}; every figure below comes from this one run.`,
    '',
    `Command: \`${meta.command}\``,
    '',
    'Results, and each compared with what it is measured against in the same run: the bare Fastify route and stock @fastify/jwt (what a user could run instead), the server\'s own unauthenticated GET /health (the same hooks, headers, metrics and logging without the token check), and the ceilings of the stack (one password hash per core given to hashing; the server\'s own refresh code without HTTP). "µs/req" is the CPU time of the process under test per answered request, given for both sides of every ratio: it moves much less from machine to machine than req/s.',
    '',
    markdownTable(rows),
    '',
    '## How to read it',
    '',
    ...meta.method.map((line) => `- ${line}`),
    '',
    ...(report.summary.length === 0 ? [] : ['## Notes', '', ...report.summary.map((line) => `- ${line}`), '']),
    ...memorySection(report.results.memoryTimeline),
    '## Every measured run',
    '',
    'CPU is a share of one core over the run (the machine has ' + meta.machine.cores + '); server CPU µs/req is the server\'s CPU time per answered request (the bare rows: the bare server\'s), which other load on the machine moves much less than req/s. "Other processes" is the machine\'s busy time minus the server, the load generator and (PostgreSQL runs) the database server: anything above a few percent means something else competed for the cores and the numbers are noisy. Warm-up runs are not listed.',
    '',
    ...runLines,
    ''
  ].join('\n')
}

function memorySection (timeline) {
  if (timeline === undefined) return []
  return [
    '## Server memory after each phase',
    '',
    '| after | RSS MiB | peak so far MiB |',
    '|---|---:|---:|',
    ...timeline.map((entry) => `| ${entry.after} | ${entry.rssMiB} | ${entry.peakMiB ?? ''} |`),
    ''
  ]
}

const escapeXml = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/**
 * A hand-written SVG: one bar per ratio. The throughput ratios share a log axis (they span from a
 * few hundredths to above 1), with a dashed line at 1 (as fast as what it is compared with); the
 * lower-is-better figures (p99 under a login storm, memory) each get a linear axis of their own.
 * Results only: no goals, no colours for pass or fail.
 */
export function svgChart (report) {
  const { bars, meta } = report
  const width = 1080
  const labelWidth = 330
  const plotWidth = 360
  const rowHeight = 34
  const top = 70
  const parts = []
  let y = top
  const text = (x, yy, content, attrs = '') => parts.push(`<text x="${x}" y="${yy}" ${attrs}>${escapeXml(content)}</text>`)

  const section = (title) => {
    y += 10
    text(12, y + 14, title, 'font-weight="bold"')
    y += 26
  }

  const logValues = bars.filter((bar) => bar.axis === 'log').map((bar) => bar.value).filter((value) => value > 0)
  const logAxis = {
    min: 10 ** Math.floor(Math.log10(Math.min(0.01, ...logValues.map((value) => value / 1.5)))),
    max: Math.max(2, ...logValues.map((value) => value * 1.2))
  }
  const logX = (value) => labelWidth + (Math.log10(Math.max(value, logAxis.min) / logAxis.min) / Math.log10(logAxis.max / logAxis.min)) * plotWidth

  const drawBar = (bar, toX) => {
    text(labelWidth - 8, y + rowHeight / 2 + 4, bar.label, 'text-anchor="end"')
    const x0 = labelWidth
    const x1 = Math.max(x0 + 1, toX(bar.value))
    parts.push(`<rect x="${x0}" y="${y + 6}" width="${(x1 - x0).toFixed(1)}" height="${rowHeight - 12}" fill="#4a6fa5" rx="2"/>`)
    text(labelWidth + plotWidth + 10, y + rowHeight / 2 + 4, bar.valueText)
    y += rowHeight
  }

  const logBars = bars.filter((bar) => bar.axis === 'log')
  if (logBars.length > 0) {
    section('Throughput ratio (log scale; dashed line = 1, as fast as what it is compared with)')
    const axisTop = y
    const axisBottom = y + logBars.length * rowHeight
    // Grid first, so bars are drawn over it.
    for (const tick of [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 2, 3, 10].filter((value) => value >= logAxis.min && value <= logAxis.max)) {
      const x = logX(tick).toFixed(1)
      parts.push(`<line x1="${x}" x2="${x}" y1="${axisTop}" y2="${axisBottom}" stroke="#e3e3e3" stroke-width="1"/>`)
      text(x, axisBottom + 14, String(tick), 'text-anchor="middle" fill="#555" font-size="11"')
    }
    for (const bar of logBars) drawBar(bar, logX)
    const one = logX(1).toFixed(1)
    parts.push(`<line x1="${one}" x2="${one}" y1="${axisTop}" y2="${axisBottom}" stroke="#222" stroke-width="1.5" stroke-dasharray="4 2"/>`)
    y += 22
  }

  const linearBars = bars.filter((bar) => bar.axis === 'linear')
  if (linearBars.length > 0) {
    section('Lower is better (each on its own linear scale; dashed line = its reference)')
    for (const bar of linearBars) {
      // A bar may carry a reference (e.g. 1 = as alone; the RSS at start), drawn as a dashed line.
      const max = Math.max(bar.value, bar.reference ?? 0) * 1.25 || 1
      const toX = (value) => labelWidth + (Math.min(value, max) / max) * plotWidth
      const rowTop = y
      drawBar(bar, toX)
      if (bar.reference !== undefined) {
        const x = toX(bar.reference).toFixed(1)
        parts.push(`<line x1="${x}" x2="${x}" y1="${rowTop + 2}" y2="${rowTop + rowHeight - 2}" stroke="#222" stroke-width="1.5" stroke-dasharray="4 2"/>`)
      }
    }
  }

  const height = y + 36
  const title = `${meta.database}: results and ratios from one run, ${meta.date.slice(0, 10)}`
  const subtitle = `Machine: ${machineName(meta.machine)}`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="12" y="44" fill="#555">${escapeXml(subtitle)}</text>`,
    ...parts,
    `<text x="12" y="${height - 12}" fill="#555" font-size="11">Each bar: this run's ratio; beside it the two req/s and the CPU µs per request of each side (npm run bench; bench/README.md).</text>`,
    '</svg>',
    ''
  ].join('\n')
}

/** What stdout shows at the end of a run: the table, every measured run, memory, notes. */
export function textReport (report) {
  const { meta, rows, runs, summary, results } = report
  const out = ['', `Benchmark on ${meta.database}. Machine: ${machineName(meta.machine)}`, '', textTable(rows), '']
  out.push('Every measured run (CPU as % of one core; µs/req = CPU time of the process under test per answered request):')
  const cell = (value, width, suffix = '') => (value === undefined ? '-' : `${value}${suffix}`).padStart(width)
  for (const r of runs) {
    const databaseCell = meta.database === 'postgresql' ? `  db ${cell(r.databaseCpu, 4, '%')}` : ''
    out.push(`  ${`${r.label} [${r.round}]`.padEnd(58)} ${cell(Math.round(r.reqPerSec), 7)} req/s  p50 ${cell(r.p50, 7)}  p99 ${cell(r.p99, 8)}  err ${cell(r.errors, 4)}  server ${cell(r.serverCpu, 4, '%')} ${cell(r.serverCpuPerRequestUs, 6)} µs/req  load-gen ${cell(r.loadgenCpu, 4, '%')}${databaseCell}  others ${cell(r.othersCpu, 4, '%')}`)
  }
  if (results.memoryTimeline !== undefined) {
    out.push('', `Server RSS after each phase (MiB): ${results.memoryTimeline.map((entry) => `${entry.after} ${Math.round(entry.rssMiB)}`).join(', ')}`)
  }
  if (summary.length > 0) out.push('', 'Notes:', ...summary.map((line) => `  ${line}`))
  return out.join('\n')
}
