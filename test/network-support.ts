// Network helpers for tests that run real servers: a free port, and a TCP relay the test can cut.
import { type Server, type Socket, connect, createServer } from 'node:net'

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A TCP relay to a real server that the test can cut (every connection dropped, new ones refused) and restore. */
export async function relay (targetPort: number) {
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = 0
  const open = async () => {
    server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      for (const socket of [client, upstream]) { sockets.add(socket); socket.on('close', () => sockets.delete(socket)); socket.on('error', () => {}) }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
    port = (server!.address() as { port: number }).port
  }
  const cut = async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server!.close(() => resolve()))
  }
  await open()
  return { get port () { return port }, cut, restore: open, close: async () => { if (server?.listening) await cut() } }
}
