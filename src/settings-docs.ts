// README's settings table and .env.example, rendered from the one declaration (src/settings.ts).
// `npm run settings:docs` writes them (src/scripts/settings-docs.ts); test/settings.test.ts fails
// when the files in the repository differ from what this renders.
import { SETTINGS, type Setting } from './settings.js'

export const README_TABLE_START = '<!-- settings table: generated from src/settings.ts by `npm run settings:docs`; edit the declarations there -->'
export const README_TABLE_END = '<!-- end of settings table -->'

const ENV_EXAMPLE_HEAD = [
  '# Every variable the server reads, with its default. Copy to .env (read at start when present).',
  '# Generated from src/settings.ts by `npm run settings:docs`: edit the declarations there, not this file.',
  '# A commented-out line has no fixed default (see its comment); its value is an example.'
]

/** The schema's default as written in an environment file, or undefined when there is none. */
function fixedDefault (setting: Setting): string | undefined {
  if (setting.defaultText !== undefined) return undefined
  const value = (setting.schema as { default?: unknown }).default
  return value === undefined ? undefined : String(value)
}

function defaultInWords (setting: Setting): string {
  if (setting.defaultText !== undefined) return setting.defaultText
  const value = fixedDefault(setting)
  if (value === undefined || value === '') return 'unset'
  return typeof (setting.schema as { default?: unknown }).default === 'number' ? value : `\`${value}\``
}

function wrap (text: string, prefix: string, width = 100): string[] {
  const lines: string[] = []
  let line = prefix
  for (const word of text.split(' ')) {
    if (line !== prefix && line.length + 1 + word.length > width) {
      lines.push(line)
      line = prefix
    }
    line += (line === prefix ? '' : ' ') + word
  }
  lines.push(line)
  return lines
}

export function renderEnvExample (settings: Record<string, Setting> = SETTINGS): string {
  const lines = [...ENV_EXAMPLE_HEAD]
  let group: string | undefined
  for (const [name, setting] of Object.entries(settings)) {
    if (setting.group !== group) {
      group = setting.group
      lines.push('', `# --- ${group} ---`)
    }
    const value = fixedDefault(setting)
    const sentence = setting.description[0]!.toUpperCase() + setting.description.slice(1) + '.'
    lines.push(...wrap(setting.defaultText === undefined ? sentence : `${sentence} Default: ${setting.defaultText}.`, '# '))
    lines.push(value === undefined ? `# ${name}=${setting.example}` : `${name}=${value}`)
  }
  return lines.join('\n') + '\n'
}

export function renderReadmeTable (settings: Record<string, Setting> = SETTINGS): string {
  const rows = Object.entries(settings).map(([name, setting]) => {
    for (const text of [setting.description, defaultInWords(setting)]) {
      if (text.includes('|') || text.includes('\n')) throw new Error(`${name}: a table cell cannot hold "|" or a line break`)
    }
    return `| \`${name}\` | ${defaultInWords(setting)} | ${setting.description} |`
  })
  return [README_TABLE_START, '| name | default | meaning |', '|---|---|---|', ...rows, README_TABLE_END].join('\n')
}

/** README's text with its settings table replaced by the rendered one. Throws when the markers are missing. */
export function withReadmeTable (readme: string, settings: Record<string, Setting> = SETTINGS): string {
  const start = readme.indexOf(README_TABLE_START)
  const end = readme.indexOf(README_TABLE_END)
  if (start === -1 || end < start) throw new Error(`README.md must hold the settings table between "${README_TABLE_START}" and "${README_TABLE_END}"`)
  return readme.slice(0, start) + renderReadmeTable(settings) + readme.slice(end + README_TABLE_END.length)
}
