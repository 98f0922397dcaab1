// The two servers under test run as child processes, so the load generator (the parent) never shares
// their event loop. Memory and CPU are read from /proc: the numbers the kernel charges the process.
import { spawn } from 'node:child_process'
import { closeSync, createWriteStream, openSync, readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** A port nobody listens on right now (the kernel picks it). */
export function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

// Children still running when this process exits for any reason (a failed setup, an exception) are
// told to stop, so a failed bench never leaves servers behind.
const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGTERM')
})

/**
 * Starts `node [nodeArgs] script` with exactly `env`, its output appended to `logFile`, and resolves
 * once `readyUrl` answers 200 or, without a readyUrl, once the child sends { type: 'ready' } over its
 * IPC channel (then `request(message)` sends a message and resolves with the child's next answer).
 * Rejects (with the log's tail) if the child exits first.
 */
export async function startChild ({ name, script, nodeArgs = [], env, cwd, logFile, readyUrl, stdoutFile, timeoutMs = 60_000 }) {
  const log = createWriteStream(logFile, { flags: 'a' })
  const ipc = readyUrl === undefined
  // With `stdoutFile` the child writes its standard output there itself (a server's per-request log
  // lines, written as operators would have them written), not through this process, the load generator.
  const stdoutFd = stdoutFile === undefined ? undefined : openSync(stdoutFile, 'a')
  const child = spawn(process.execPath, [...nodeArgs, script], { env, cwd, stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])] })
  if (stdoutFd !== undefined) closeSync(stdoutFd)
  const messages = []
  const waiting = []
  if (ipc) {
    child.on('message', (message) => {
      const waiter = waiting.shift()
      if (waiter === undefined) messages.push(message)
      else waiter(message)
    })
  }
  const nextMessage = () => (messages.length > 0 ? Promise.resolve(messages.shift()) : new Promise((resolve) => waiting.push(resolve)))
  let tail = ''
  const keep = (chunk) => {
    log.write(chunk)
    tail = (tail + chunk.toString()).slice(-4000)
  }
  child.stdout?.on('data', keep)
  child.stderr.on('data', keep)
  running.add(child)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child)
    resolve({ code, signal })
  }))

  const deadline = Date.now() + timeoutMs
  let early
  exited.then((status) => { early = status })
  let ready = false
  if (ipc) {
    nextMessage().then((message) => { ready = message?.type === 'ready' })
  }
  const isReady = async () => {
    if (ipc) return ready
    try {
      const response = await fetch(readyUrl)
      await response.arrayBuffer()
      return response.status === 200
    } catch {
      return false // not listening yet
    }
  }
  while (true) {
    if (early !== undefined) {
      throw new Error(`${name} exited before it was ready (code ${early.code}, signal ${early.signal}). Output:\n${tail}`)
    }
    if (await isReady()) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${name} was not ready after ${timeoutMs} ms. Output:\n${tail}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  return {
    name,
    pid: child.pid,
    /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves with the exit status. */
    async stop (graceMs = 15_000) {
      if (early === undefined) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
        await exited
        clearTimeout(timer)
      }
      await new Promise((resolve) => log.end(resolve))
      return exited
    },
    get exited () { return early },
    /** Sends `message` to the child and resolves with its answer; rejects if the child exits first. */
    async request (message) {
      if (!ipc) throw new Error(`${name} has no IPC channel`)
      child.send(message)
      const answer = await Promise.race([nextMessage(), exited.then((status) => { throw new Error(`${name} exited (code ${status.code}, signal ${status.signal}). Output:\n${tail}`) })])
      if (answer?.type === 'error') throw new Error(`${name}: ${answer.message}`)
      return answer
    }
  }
}

/** Resident set size and its peak (VmHWM), in bytes, from /proc/<pid>/status. */
export function memoryOf (pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field) => Number((new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status) ?? [])[1] ?? NaN) * 1024
  return { rss: kib('VmRSS'), peakRss: kib('VmHWM') }
}

// Linux reports CPU time in clock ticks; 100 per second on every mainstream kernel configuration.
const CLOCK_TICKS = 100

/** CPU time (user + system) the process has used so far, in milliseconds. */
export function cpuMsOf (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may contain spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) * 1000) / CLOCK_TICKS
}

/** CPU time used so far by each process with this command name (e.g. the PostgreSQL server's): pid → ms. */
export function cpuMsByPidOfCommand (command) {
  const byPid = new Map()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== command) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      byPid.set(entry, ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS)
    } catch {
      // the process ended meanwhile
    }
  }
  return byPid
}

/**
 * CPU time those processes used between two snapshots. A process that ended in between is not
 * counted (its last slice is lost; /proc keeps nothing of it); one that started counts from zero.
 */
export function cpuMsBetween (before, after) {
  let total = 0
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0)
  return Math.max(0, total)
}

/** CPU time all processes on the machine have used so far (every core; not idle, not iowait), in ms. */
export function machineBusyMs () {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
  return (busy * 1000) / CLOCK_TICKS
}

/** Samples the RSS of `pid` every `intervalMs` until stopped; keeps the peak. */
export function watchMemory (pid, intervalMs = 250) {
  let peak = 0
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, memoryOf(pid).rss)
    } catch {
      // the process is gone
    }
  }, intervalMs)
  timer.unref()
  return {
    get peak () { return peak },
    stop () { clearInterval(timer) }
  }
}
