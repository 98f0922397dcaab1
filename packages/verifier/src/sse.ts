// A Server-Sent Events parser (the WHATWG event-stream format) over a fetch body: enough for the
// revocation stream, with no dependency.

export interface SseMessage {
  /** The `id:` field when the message had one. */
  id?: string
  /** The joined `data:` lines, when there were any. */
  data?: string
  /** A comment-only message (a heartbeat). */
  comment: boolean
}

export async function * readEventStream (body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder()
  let buffered = ''
  let id: string | undefined
  let data: string[] = []
  let sawField = false
  let sawComment = false
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true })
    const lines = buffered.split(/\r\n|\r|\n/)
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      if (line === '') {
        if (sawField || sawComment) yield { ...(id === undefined ? {} : { id }), ...(data.length === 0 ? {} : { data: data.join('\n') }), comment: !sawField }
        id = undefined
        data = []
        sawField = false
        sawComment = false
        continue
      }
      if (line.startsWith(':')) { sawComment = true; continue }
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      sawField = true
      if (field === 'id' && !value.includes('\0')) id = value
      else if (field === 'data') data.push(value)
    }
  }
}
