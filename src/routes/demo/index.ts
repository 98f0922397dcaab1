// /demo/: a plain HTML page that uses the client SDK (packages/client) against this server, and the
// SDK's browser build at /demo/auth-client.js. Registered only while DEMO=true.
//
// The page gets its own Content-Security-Policy (scripts, styles and fetches from this origin only),
// set in the handlers, so every other route keeps the API policy of src/plugins/security-headers.ts.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { ServiceUnavailable } from '../../errors.js'

export const DEMO_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"
].join('; ')

/** The repository root: the folder holding packages/client, found from this file in src/ or dist/src/. */
function projectRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'packages', 'client', 'package.json'))) return dir
    dir = dirname(dir)
  }
  throw new Error('demo: cannot find packages/client above ' + fileURLToPath(import.meta.url))
}

const ASSETS = {
  'index.html': 'text/html; charset=utf-8',
  'demo.js': 'text/javascript; charset=utf-8',
  'demo.css': 'text/css; charset=utf-8'
} as const

const TextAsset = Type.String({ description: 'demo asset' })
// `hide` keeps the demo out of the generated API docs (OpenAPI); the schemas still describe the routes.
const hidden = { hide: true, response: { 200: TextAsset } }
const hiddenRedirect = { hide: true, response: { 302: Type.Null() } }

export default async function demoRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const root = projectRoot()
  const assets = new Map<string, string>()
  for (const name of Object.keys(ASSETS)) assets.set(name, readFileSync(join(root, 'src', 'routes', 'demo', 'assets', name), 'utf8'))
  const sdkFile = join(root, 'packages', 'client', 'dist', 'index.js')

  const send = (reply: FastifyReply, type: string, body: string) => reply
    .header('content-security-policy', DEMO_CSP)
    .header('cache-control', 'no-cache')
    .type(type)
    .send(body)

  fastify.get('/demo', { config: { public: true }, schema: hiddenRedirect }, async (_request, reply) => reply.redirect('demo/'))
  fastify.get('/demo/', { config: { public: true }, schema: hidden }, async (_request, reply) => send(reply, ASSETS['index.html'], assets.get('index.html')!))
  fastify.get('/demo/demo.js', { config: { public: true }, schema: hidden }, async (_request, reply) => send(reply, ASSETS['demo.js'], assets.get('demo.js')!))
  fastify.get('/demo/demo.css', { config: { public: true }, schema: hidden }, async (_request, reply) => send(reply, ASSETS['demo.css'], assets.get('demo.css')!))

  // Read on each request: `npm run build` rebuilds the SDK while a development server runs.
  fastify.get('/demo/auth-client.js', { config: { public: true }, schema: hidden }, async (request, reply) => {
    let sdk: string
    try {
      sdk = readFileSync(sdkFile, 'utf8')
    } catch (error) {
      request.log.warn({ err: error }, 'the client SDK is not built (npm run build)')
      throw new ServiceUnavailable()
    }
    return send(reply, 'text/javascript; charset=utf-8', sdk)
  })
}
