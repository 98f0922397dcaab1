// The demo page: everything goes through the SDK (./auth-client.js), the way an app would use it.
import { createAuthClient } from './auth-client.js'

// The server's base URL is this page's folder's parent, so the demo also works behind a path prefix.
const baseUrl = new URL('..', location.href).href.replace(/\/$/, '')
const auth = createAuthClient({ baseUrl, mode: 'web' })
window.demoAuth = auth // for the console: demoAuth.fetch('/orders').then((r) => r.json())

const $ = (selector) => document.querySelector(selector)
const REASONS = {
  logout: 'You were logged out.',
  reused: 'Your session was ended: its refresh token was used twice (possibly stolen).',
  revoked: 'Your session was ended elsewhere.',
  expired: 'Your session expired. Please log in again.',
  'password-changed': 'The password was changed. Please log in again.'
}
let historyAvailable = true

function status (message, isError = false) {
  const line = $('#status')
  line.textContent = message
  line.classList.toggle('error', isError)
}

function describe (error) {
  return error && error.code ? `${error.message} (${error.code})` : String(error)
}

async function attempt (button, task) {
  if (button) button.disabled = true
  try {
    await task()
  } catch (error) {
    status(describe(error), true)
  } finally {
    if (button) button.disabled = false
  }
}

async function api (path, init) {
  const response = await auth.fetch(path, init)
  if (response.status === 204) return null
  const body = await response.json().catch(() => null)
  if (!response.ok) throw Object.assign(new Error(body?.message ?? `HTTP ${response.status}`), { code: body?.code })
  return body
}

function element (tag, text, className) {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = text
  if (className) node.className = className
  return node
}

function button (text, onClick, className = 'small') {
  const node = element('button', text, className)
  node.type = 'button'
  node.addEventListener('click', () => attempt(node, onClick))
  return node
}

const when = (iso) => new Date(iso).toLocaleString()

/** "Chrome 131 on Android" from a user agent string; the whole string goes in the tooltip. */
function shortAgent (ua) {
  if (!ua) return 'unknown client'
  const browser = ua.match(/(Edg|Firefox|Chrome|HeadlessChrome|Version)\/(\d+)/)
  const names = { Edg: 'Edge', Version: 'Safari', HeadlessChrome: 'Headless Chrome' }
  const os = ua.match(/Android|iPhone|iPad|Mac OS X|Windows|Linux/)
  if (!browser) return ua.slice(0, 40)
  return `${names[browser[1]] ?? browser[1]} ${browser[2]}${os ? ` on ${os[0].replace('Mac OS X', 'macOS')}` : ''}`
}

async function renderOrders () {
  const { orders } = await api('/orders')
  const list = $('#orders')
  list.replaceChildren()
  if (orders.length === 0) list.append(element('li', 'No orders yet.', 'muted'))
  for (const order of orders) {
    const item = element('li')
    item.dataset.orderId = order.id
    item.append(element('span', `${order.quantity} × ${order.item}`, 'grow'),
      button('Delete', async () => { await api(`/orders/${order.id}`, { method: 'DELETE' }); await renderOrders() }))
    list.append(item)
  }
}

async function showHistory (session, item, toggle) {
  const existing = item.querySelector('.events')
  if (existing) { existing.remove(); toggle.textContent = 'History'; return }
  const response = await auth.fetch(`/auth/sessions/${session.id}/events`)
  if (response.status === 404) {
    // This server has no session history (GET /auth/sessions/:id/events): stop offering it.
    historyAvailable = false
    for (const node of document.querySelectorAll('[data-history]')) node.remove()
    status('This server does not keep session history.')
    return
  }
  const body = await response.json()
  if (!response.ok) throw Object.assign(new Error(body.message), { code: body.code })
  const events = element('ol', undefined, 'events')
  for (const event of body.events) {
    const details = [event.type, when(event.at), event.ip, event.reason].filter(Boolean).join(' · ')
    events.append(element('li', details))
  }
  if (body.events.length === 0) events.append(element('li', 'No events.'))
  item.append(events)
  toggle.textContent = 'Hide history'
}

async function renderSessions () {
  const sessions = await auth.sessions()
  const list = $('#sessions')
  list.replaceChildren()
  for (const session of sessions) {
    const item = element('li')
    item.dataset.sessionId = session.id
    const text = element('span', `${shortAgent(session.userAgent)} · ${session.ip ?? '?'} · since ${when(session.createdAt)}`, 'grow')
    text.title = session.userAgent ?? ''
    item.append(text)
    if (session.current) item.append(element('span', 'this browser', 'badge'))
    if (historyAvailable) {
      const toggle = button('History', () => showHistory(session, item, toggle))
      toggle.dataset.history = ''
      item.append(toggle)
    }
    item.append(button(session.current ? 'Log out' : 'Revoke', async () => {
      await auth.revokeSession(session.id)
      if (!session.current) await renderSessions()
    }))
    list.append(item)
  }
}

async function renderSignedIn () {
  await Promise.all([renderOrders(), renderSessions()])
}

function show (user) {
  $('#who').textContent = user ? `Signed in as ${user.username}` : 'Not signed in'
  $('#signed-in').hidden = !user
  $('#signed-out').hidden = Boolean(user)
  if (user) void attempt(null, renderSignedIn)
}

auth.onChange(show)
auth.onSessionEnded((reason) => status(REASONS[reason] ?? `Session ended (${reason}).`, reason !== 'logout'))

$('#login-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.currentTarget
  const submitter = event.submitter
  const username = form.username.value.trim()
  const password = form.password.value
  void attempt(submitter, async () => {
    if (submitter?.value === 'register') await auth.register(username, password)
    await auth.login(username, password)
    form.password.value = ''
    status(`Welcome, ${username}.`)
  })
})

$('#order-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.currentTarget
  void attempt(event.submitter, async () => {
    await api('/orders', { method: 'POST', body: JSON.stringify({ item: form.item.value, quantity: Number(form.quantity.value) }) })
    form.item.value = ''
    await renderOrders()
  })
})

$('#password-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.currentTarget
  void attempt(event.submitter, async () => {
    await auth.changePassword(form.currentPassword.value, form.newPassword.value)
    form.currentPassword.value = ''
    form.newPassword.value = ''
    status('Password changed. Your other sessions have ended; this one goes on.')
    await renderSessions()
  })
})

$('#logout').addEventListener('click', (event) => attempt(event.currentTarget, () => auth.logout()))
$('#logout-all').addEventListener('click', (event) => attempt(event.currentTarget, () => auth.logoutAll()))

// Picks up the session this browser already has (the cookie), without a login.
void attempt(null, async () => { show(await auth.resume()) })
