// http_request_duration_seconds, kept cheaply: every answered request adds one observation, so the
// hot path is two Map lookups, a bucket search and three additions on a series made once per
// (route, method, status). prom-client's Histogram validates and hashes its labels object on every
// observe (~0.63 µs, against ~0.02 µs here, timed in one process); this metric hands the registry the
// same data, in the shape prom-client's Histogram gives it, only when it is scraped (the text and the
// cluster aggregator's JSON alike). That shape is prom-client's, not a documented interface:
// test/plugins/request-duration.test.ts compares both outputs with a real Histogram's, exactly.
import type { Registry } from 'prom-client'

type Labels = Record<string, string | number>

interface Series {
  labels: Labels
  /** counts[i]: observations at most bounds[i] (not cumulative); counts[bounds.length]: above all. */
  counts: Float64Array
  sum: number
  count: number
}

interface Value { labels: Labels, sharedLabels: Labels, value: number, metricName: string, exemplar: null | undefined }

export interface RequestDurationOptions {
  name: string
  help: string
  buckets: number[]
  registers: Registry[]
}

export class RequestDurationHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  /** Under `npm run start:cluster` the primary sums the workers' series. */
  readonly aggregator = 'sum'
  private readonly bounds: number[]
  /** route pattern → method → status code → series */
  private series = new Map<string, Map<string, Map<number, Series>>>()

  constructor ({ name, help, buckets, registers }: RequestDurationOptions) {
    this.name = name
    this.help = help
    this.bounds = [...buckets].sort((a, b) => a - b)
    for (const registry of registers) registry.registerMetric(this as never)
  }

  observe (method: string, route: string, statusCode: number, seconds: number): void {
    let byMethod = this.series.get(route)
    if (byMethod === undefined) this.series.set(route, byMethod = new Map())
    let byStatus = byMethod.get(method)
    if (byStatus === undefined) byMethod.set(method, byStatus = new Map())
    let series = byStatus.get(statusCode)
    if (series === undefined) {
      series = { labels: { method, route, status_code: statusCode }, counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }
      byStatus.set(statusCode, series)
    }
    const { bounds } = this
    let index = 0
    while (index < bounds.length && seconds > bounds[index]!) index++
    series.counts[index]!++
    series.sum += seconds
    series.count++
  }

  /** What prom-client's Registry prints: its Histogram's values (labels of a series as shared labels, `le` of its own). */
  getForPromString () {
    const values: Value[] = []
    const bucket = `${this.name}_bucket`
    for (const series of this.allSeries()) {
      let cumulative = 0
      this.bounds.forEach((bound, index) => {
        cumulative += series.counts[index]!
        values.push({ labels: { le: bound }, sharedLabels: series.labels, value: cumulative, metricName: bucket, exemplar: null })
      })
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: series.labels, value: series.count, metricName: bucket, exemplar: null },
        { labels: {}, sharedLabels: series.labels, value: series.sum, metricName: `${this.name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels: series.labels, value: series.count, metricName: `${this.name}_count`, exemplar: undefined }
      )
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  /** The JSON form (getMetricsAsJSON, the cluster aggregator), as prom-client's Histogram gives it: labels splayed. */
  get () {
    const data = this.getForPromString()
    return {
      ...data,
      values: data.values.map(({ labels, sharedLabels, ...value }) => ({ ...value, labels: { ...labels, ...sharedLabels } }))
    }
  }

  reset (): void {
    this.series = new Map()
  }

  private * allSeries (): Iterable<Series> {
    for (const byMethod of this.series.values()) for (const byStatus of byMethod.values()) yield * byStatus.values()
  }
}
