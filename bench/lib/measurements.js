// What one benchmark run measures and keeps: every measured run (through the one re-measure loop),
// the rows of the results table with their comparisons, and the chart's bars.
import { measureCpu, round } from './load.js'

// A run during which other processes used more than this share of a core is repeated (the machine is
// shared), up to MAX_ATTEMPTS times; the least disturbed attempt is kept.
export const DISTURBED_OTHERS_CPU = 25
export const MAX_ATTEMPTS = 3

/** Of several runs, the one with the highest req/s (the least disturbed by anything else on the machine). */
export const best = (list) => list.reduce((a, b) => (b.reqPerSec > a.reqPerSec ? b : a))

const fmtNumber = (value) => (value === undefined ? '-' : Math.round(value).toLocaleString('en-US'))

export function createMeasurements ({ options, databaseMeter, served, log }) {
  const runs = []
  const rows = []
  const bars = []

  /**
   * One measured run, repeated while other processes disturb it. A contender is { id, label, pid, load,
   * prepare?, counts? }: `prepare()` runs before each attempt, outside the measurement; `load(seconds)`
   * resolves with an outcome (lib/load.js); `counts` ('protected' | 'refreshes') adds the answers the
   * auth server gave to `served`.
   */
  async function measure (contender, { round: roundNumber = 0, warmup = false } = {}) {
    const seconds = warmup ? options.warmup : options.duration
    const maxAttempts = warmup ? 1 : MAX_ATTEMPTS
    const label = warmup ? `${contender.label} (warm-up)` : contender.label
    let kept
    let attempts = 0
    while (attempts < maxAttempts) {
      attempts++
      await contender.prepare?.()
      const run = { label, ...await measureCpu(contender.pid, databaseMeter, () => contender.load(seconds)) }
      if (contender.counts !== undefined) served[contender.counts] += run.requests
      if (kept === undefined || run.othersCpu < kept.othersCpu) kept = run
      if (run.othersCpu <= DISTURBED_OTHERS_CPU) break
      if (attempts < maxAttempts) log(`${label}: other processes used ${run.othersCpu}% of a core meanwhile; measuring again`)
    }
    kept = { ...kept, attempts, id: contender.id }
    if (!warmup) runs.push({ ...kept, round: roundNumber })
    return kept
  }

  /** A warm-up of each contender, then `rounds` × (each contender in turn). Returns each one's runs by id. */
  async function alternate (title, contenders) {
    log(`${title}: warm-up`)
    for (const contender of contenders) await measure(contender, { warmup: true })
    const byId = Object.fromEntries(contenders.map((contender) => [contender.id, []]))
    for (let index = 1; index <= options.rounds; index++) {
      log(`${title}: round ${index}/${options.rounds}`)
      for (const contender of contenders) byId[contender.id].push(await measure(contender, { round: index }))
    }
    return byId
  }

  /**
   * A row of the results table. `comparisons` are { against, reference, ratio?, text?, chart?, unit? }:
   * `reference` is a run (or { reqPerSec, serverCpuPerRequestUs }) the row is divided by; the ratio is
   * row ÷ reference unless given. Each comparison is also a bar of the chart unless `chart: false`;
   * `bar` adds one of another kind (a linear lower-is-better figure).
   */
  function row (label, run, { comparisons = [], value, note, bar, chartLabel = label } = {}) {
    const compared = comparisons.map(({ against, reference, ratio, text, chart = true, unit = 'req/s' }) => {
      const quotient = ratio ?? run.reqPerSec / reference.reqPerSec
      if (chart) bars.push({ axis: 'log', label: `${chartLabel} ÷ ${against}`, value: quotient, valueText: `${quotient.toFixed(3)} × (${fmtNumber(run.reqPerSec)} vs ${fmtNumber(reference.reqPerSec)} ${unit}; ${run.serverCpuPerRequestUs ?? '-'} vs ${reference.serverCpuPerRequestUs ?? '-'} µs/req)` })
      return { against, ratio: round(quotient, 4), text: text ?? `${quotient.toFixed(3)} × ${against} (${fmtNumber(reference.reqPerSec)} ${unit})`, referenceReqPerSec: reference.reqPerSec, referenceUsPerRequest: reference.serverCpuPerRequestUs }
    })
    if (bar !== undefined) bars.push(bar)
    rows.push({
      scenario: label,
      connections: run?.connections,
      reqPerSec: run?.reqPerSec,
      p50: run?.p50,
      p99: run?.p99,
      errors: run?.errors,
      usPerRequest: run?.serverCpuPerRequestUs,
      databaseCpu: run?.databaseCpu,
      comparisons: compared,
      value,
      note
    })
    return compared
  }

  /** The report's first row: the best of every bare run, whichever scenarios made them. */
  function bareRow () {
    const bareRuns = runs.filter((run) => run.id === 'bare')
    if (bareRuns.length === 0) return undefined
    const top = best(bareRuns)
    rows.unshift({ scenario: 'bare GET /bare (bench/bare-server.js)', connections: top.connections, reqPerSec: top.reqPerSec, p50: top.p50, p99: top.p99, errors: bareRuns.reduce((sum, r) => sum + r.errors, 0), usPerRequest: top.serverCpuPerRequestUs, comparisons: [], note: 'best of all bare runs' })
    return { best: top, runs: bareRuns }
  }

  return { runs, rows, bars, measure, alternate, row, bareRow, recordRun: (run) => runs.push(run) }
}
