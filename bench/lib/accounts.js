// Setting the stage through the public API only, as a client would: register users, log them in
// (each login is a session with its own refresh-token chain), rotate to get fresh access tokens,
// and create a few orders for GET /orders to read.

async function call (baseUrl, method, path, { body, accessToken } = {}) {
  const headers = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`
  const response = await fetch(baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  const json = text === '' ? null : JSON.parse(text)
  return { status: response.status, json }
}

async function expectStatus (promise, status, what) {
  const result = await promise
  if (result.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${result.status} ${JSON.stringify(result.json)}`)
  }
  return result.json
}

/** Runs `work(item)` for every item, at most `concurrency` at a time; keeps the order. */
export async function mapLimit (items, concurrency, work) {
  const results = new Array(items.length)
  let next = 0
  async function lane () {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index], index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane))
  return results
}

export const BENCH_PASSWORD = 'bench-password-Zq8#wL2!'

export function createClient (baseUrl) {
  return {
    register: (username) => expectStatus(call(baseUrl, 'POST', '/auth/register', { body: { username, password: BENCH_PASSWORD } }), 201, `register ${username}`),
    /** Returns a token response: { accessToken, refreshToken, user, … }. */
    login: (username) => expectStatus(call(baseUrl, 'POST', '/auth/login', { body: { username, password: BENCH_PASSWORD } }), 200, `login ${username}`),
    refresh: (refreshToken) => expectStatus(call(baseUrl, 'POST', '/auth/refresh', { body: { refreshToken } }), 200, 'refresh'),
    createOrder: (accessToken, item, quantity) => expectStatus(call(baseUrl, 'POST', '/orders', { body: { item, quantity }, accessToken }), 201, 'create order'),
    me: (accessToken) => expectStatus(call(baseUrl, 'GET', '/auth/me', { accessToken }), 200, 'me')
  }
}

/** An autocannon request that logs `username` in again and again (each a new session). */
export function loginRequest (serverUrl, username, connections) {
  return {
    url: `${serverUrl}/auth/login`,
    method: 'POST',
    connections,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: BENCH_PASSWORD })
  }
}
