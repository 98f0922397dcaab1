// RequestDurationHistogram hands prom-client's registry the values prom-client's own Histogram would:
// fed the same observations, the scrape text, the JSON (getMetricsAsJSON) and the cluster aggregate
// must be identical. If prom-client changes its histogram's shape, this fails.
import { AggregatorRegistry, Histogram, Registry } from 'prom-client'
import t from 'tap'
import { RequestDurationHistogram } from '../../src/plugins/request-duration.js'

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const NAME = 'http_request_duration_seconds'
const HELP = 'Time to answer an HTTP request, by method, route pattern and status code.'

function pair () {
  const reference = new Registry()
  const ours = new Registry()
  const histogram = new Histogram({ name: NAME, help: HELP, labelNames: ['method', 'route', 'status_code'], buckets: BUCKETS, registers: [reference] })
  const light = new RequestDurationHistogram({ name: NAME, help: HELP, buckets: BUCKETS, registers: [ours] })
  const observe = (method: string, route: string, statusCode: number, seconds: number) => {
    histogram.observe({ method, route, status_code: statusCode }, seconds)
    light.observe(method, route, statusCode, seconds)
  }
  return { reference, ours, observe, light, histogram }
}

const OBSERVATIONS: Array<[string, string, number, number]> = [
  ['GET', '/auth/me', 200, 0.0004], ['GET', '/auth/me', 200, 0.001], ['GET', '/auth/me', 200, 0.0011],
  ['GET', '/auth/me', 401, 0.3], ['POST', '/auth/login', 200, 7], ['POST', '/auth/login', 200, 5],
  ['GET', 'unmatched', 404, 0.0025], ['GET', '/orders/:id', 200, 0.01], ['GET', 'a "quoted\\ route\n', 500, 0.05]
]

t.test('the scrape text is the same as prom-client\'s Histogram\'s', async (t) => {
  const { reference, ours, observe } = pair()
  t.equal(await ours.metrics(), await reference.metrics(), 'no observation yet')
  for (const observation of OBSERVATIONS) observe(...observation)
  const text = await ours.metrics()
  t.equal(text, await reference.metrics())
  t.match(text, 'http_request_duration_seconds_count{method="GET",route="/auth/me",status_code="200"} 3')
  t.match(text, 'http_request_duration_seconds_bucket{le="0.001",method="GET",route="/auth/me",status_code="200"} 2')
})

t.test('the JSON and the cluster aggregate are the same as prom-client\'s', async (t) => {
  const { reference, ours, observe } = pair()
  for (const observation of OBSERVATIONS) observe(...observation)
  const [referenceJson, ourJson] = [await reference.getMetricsAsJSON(), await ours.getMetricsAsJSON()]
  t.equal(JSON.stringify(ourJson), JSON.stringify(referenceJson))
  const aggregate = async (json: unknown) => AggregatorRegistry.aggregate([json, json] as never).metrics()
  t.equal(await aggregate(ourJson), await aggregate(referenceJson), 'two workers summed alike')
})

t.test('reset forgets every series, as the registry\'s resetMetrics does', async (t) => {
  const { reference, ours, observe } = pair()
  for (const observation of OBSERVATIONS) observe(...observation)
  reference.resetMetrics()
  ours.resetMetrics()
  t.equal(await ours.metrics(), await reference.metrics())
  observe('GET', '/auth/me', 200, 0.2)
  t.equal(await ours.metrics(), await reference.metrics())
})
