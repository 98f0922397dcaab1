// What every CLI command shares: its outcome as an exit code (0 ok, 1 failed, 2 usage), output as
// text or --json, confirmation of destructive commands, and reading a password.

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

/** A failure the operator can act on: its message is printed, its code is the exit status. */
export class CliError extends Error {
  constructor (message: string, readonly exitCode: number = EXIT_FAILED, readonly code = exitCode === EXIT_USAGE ? 'USAGE' : 'FAILED') {
    super(message)
    this.name = 'CliError'
  }
}

export interface Output {
  json: boolean
  /** The command's result: the JSON value with --json, else the text. */
  result: (value: unknown, text: string) => void
  /** Progress and notes for people: stderr, and never with --json. */
  note: (text: string) => void
}

export function output (json: boolean): Output {
  return {
    json,
    result: (value, text) => { process.stdout.write(json ? JSON.stringify(value) + '\n' : text.replace(/\n?$/, '\n')) },
    note: (text) => { if (!json) process.stderr.write(text + '\n') }
  }
}

/** Aligned columns for people; --json gets the rows themselves. */
export function table<Row extends object> (items: Row[], columns: Array<keyof Row & string>): string {
  const rows = items as Array<Record<string, unknown>>
  const cell = (value: unknown) => value instanceof Date ? value.toISOString() : value === null || value === undefined ? '-' : String(value)
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)))
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(columns), ...rows.map((row) => line(columns.map((column) => cell(row[column]))))].join('\n')
}

const interactive = () => process.stdin.isTTY === true && process.stderr.isTTY === true

/**
 * Asks before a destructive command. --yes skips the question; without a terminal to ask on, the
 * command is refused (exit 2) rather than run unasked.
 */
export async function confirmOrRefuse (question: string, yes: boolean | undefined): Promise<void> {
  if (yes === true) return
  if (!interactive()) throw new CliError(`${question} Refusing without confirmation: no terminal to ask on; pass --yes to go ahead.`, EXIT_USAGE, 'CONFIRMATION_REQUIRED')
  // Loaded only when a question is asked: most runs ask none, and each run starts a process.
  const { confirm } = await import('@inquirer/prompts')
  const ok = await confirm({ message: question, default: false }, { output: process.stderr })
  if (!ok) throw new CliError('Aborted: nothing was changed.', EXIT_FAILED, 'ABORTED')
}

/** A password from stdin when it is not a terminal (one trailing newline dropped), else a hidden prompt, asked twice. */
export async function readPassword (): Promise<string> {
  if (process.stdin.isTTY !== true) {
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
    if (text === '') throw new CliError('No password on stdin.', EXIT_USAGE, 'VALIDATION_ERROR')
    return text
  }
  const { password: promptPassword } = await import('@inquirer/prompts')
  const first = await promptPassword({ message: 'New password:', mask: false }, { output: process.stderr })
  const second = await promptPassword({ message: 'Again:', mask: false }, { output: process.stderr })
  if (first !== second) throw new CliError('The two passwords differ: nothing was changed.', EXIT_USAGE, 'VALIDATION_ERROR')
  return first
}
