// pg-boss's driver for bench/peers.py, run by the Node that bench/peers.py
// installs beside pg-boss under .bench-peers/node (PGBOSS_HOME names that folder).
//
//   node pgboss.mjs ADMIN_URL setup|version|drop
//   node pgboss.mjs ADMIN_URL enqueue SINGLE BATCH
//   node pgboss.mjs ADMIN_URL fill COUNT [analyze]
//   node pgboss.mjs ADMIN_URL worker [EXPECT]     # until SIGTERM
//   node pgboss.mjs ADMIN_URL pickup SAMPLES
//
// What it prints is the protocol of bench/peers_py/peer_common.py: "version X",
// "enqueue <single/s> <batch/s>", "filled N", "ready", "progress N",
// "window <first taken> <last finished> <count>" (epoch seconds), "pickups <ms> ...".
//
// Configured as pg-boss 12's types and docs say for throughput and latency: one
// queue with `notify: true` on an instance with `useListenNotify: true` (a job
// sent wakes the workers at once; polling stays on as the backstop), `work()`
// with `batchSize: 10`, `localConcurrency: 8` (8 workers in this process, each
// fetching 10 at a time), `burstWhenBatchFull` (fetch again at once while
// batches come back full) and the lowest polling interval it takes (0.5 s).
// Single enqueue is `send()`, batches `insert()` of 1,000. The drain's window
// is pg-boss's own job rows: first `started_on` to last `completed_on`.
// BENCH_PGBOSS_NOTIFY=0 measures it polling only (no LISTEN/NOTIFY).

import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const HOME = process.env.PGBOSS_HOME
if (!HOME) throw new Error('PGBOSS_HOME must name the folder pg-boss is installed in')
const requireHere = createRequire(path.join(HOME, 'package.json'))
const { PgBoss } = await import(pathToFileURL(requireHere.resolve('pg-boss')).href)
const pg = requireHere('pg')
const { parse } = requireHere('pg-connection-string')

const DATABASE = 'bench_pgboss'
const QUEUE = 'bench'
const PING = 'bench-ping'
const NOTIFY = process.env.BENCH_PGBOSS_NOTIFY !== '0'
const WORK = {
  batchSize: 10,
  localConcurrency: 8,
  pollingIntervalSeconds: 0.5,
  burstWhenBatchFull: true
}

const say = (...words) => process.stdout.write(words.join(' ') + '\n')
const now = () => (performance.timeOrigin + performance.now()) / 1000
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function config (adminUrl, database) {
  const parsed = parse(adminUrl)
  return {
    host: parsed.host,
    port: parsed.port ? Number(parsed.port) : undefined,
    user: parsed.user,
    password: parsed.password || undefined,
    database
  }
}

async function admin (adminUrl, statements) {
  const client = new pg.Client(config(adminUrl, parse(adminUrl).database || 'postgres'))
  await client.connect()
  try {
    for (const statement of statements) await client.query(statement)
  } finally {
    await client.end()
  }
}

async function client (adminUrl) {
  const c = new pg.Client(config(adminUrl, DATABASE))
  await c.connect()
  return c
}

function boss (adminUrl, extra = {}) {
  const instance = new PgBoss({
    ...config(adminUrl, DATABASE),
    useListenNotify: NOTIFY,
    ...extra
  })
  instance.on('error', error => console.error('pg-boss error:', error))
  return instance
}

async function setup (adminUrl) {
  await admin(adminUrl, [
    `DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`,
    `CREATE DATABASE ${DATABASE}`
  ])
  const c = await client(adminUrl)
  await c.query('CREATE TABLE bench_pickups (sent_at float8, started_at float8)')
  await c.end()
  const b = boss(adminUrl, { supervise: false, schedule: false })
  await b.start()
  await b.createQueue(QUEUE, { notify: NOTIFY })
  await b.createQueue(PING, { notify: NOTIFY })
  await b.stop({ graceful: false })
}

// A producer: sends only (no maintenance, no cron, no listener).
function producer (adminUrl) {
  return boss(adminUrl, { supervise: false, schedule: false, useListenNotify: false })
}

async function enqueue (adminUrl, single, batch) {
  await setup(adminUrl)
  const b = producer(adminUrl)
  await b.start()
  let started = performance.now()
  for (let i = 0; i < single; i++) await b.send(QUEUE, { i })
  const one = single / ((performance.now() - started) / 1000)
  started = performance.now()
  for (let start = 0; start < batch; start += 1000) {
    const jobs = []
    for (let i = start; i < start + 1000; i++) jobs.push({ data: { i } })
    await b.insert(QUEUE, jobs)
  }
  const many = batch / ((performance.now() - started) / 1000)
  await b.stop({ graceful: false })
  say('enqueue', one, many)
}

async function fill (adminUrl, count, analyze) {
  await setup(adminUrl)
  const b = producer(adminUrl)
  await b.start()
  for (let start = 0; start < count; start += 1000) {
    const jobs = []
    for (let i = start; i < Math.min(start + 1000, count); i++) jobs.push({ data: { i } })
    await b.insert(QUEUE, jobs)
  }
  await b.stop({ graceful: false })
  if (analyze) {
    const c = await client(adminUrl)
    await c.query('ANALYZE')
    await c.end()
  }
  say('filled', count)
}

async function worker (adminUrl, expect) {
  const side = await client(adminUrl) // the bench's own writes and reads
  const b = boss(adminUrl)
  let done = 0
  let reported = false
  let stopping = false
  await b.start()
  await b.work(QUEUE, WORK, async jobs => { done += jobs.length })
  await b.work(PING, WORK, async jobs => {
    const startedAt = now()
    for (const job of jobs) {
      await side.query('INSERT INTO bench_pickups VALUES ($1, $2)', [job.data.sent_at, startedAt])
    }
  })
  // Ready once its listener has said LISTEN (or at once when polling only).
  while (NOTIFY) {
    const { rows } = await side.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'")
    if (rows[0].n) break
    await sleep(50)
  }
  say('ready')

  async function window () {
    const { rows } = await side.query(
      `SELECT count(*) FILTER (WHERE state <> 'completed')::int AS pending,
              extract(epoch FROM min(started_on))::float8 AS first,
              extract(epoch FROM max(completed_on))::float8 AS last,
              count(*) FILTER (WHERE state = 'completed')::int AS n
       FROM pgboss.job WHERE name = $1`, [QUEUE])
    const row = rows[0]
    return row.pending ? null : [row.first, row.last, row.n]
  }

  const stop = new Promise(resolve => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
  })
  const reporter = (async () => {
    while (!stopping) {
      say('progress', done)
      if (!reported && expect && done >= expect) {
        const result = await window()
        if (result) {
          say('window', ...result)
          reported = true
        }
      }
      await Promise.race([sleep(500), stop])
    }
  })()
  await stop
  stopping = true
  await reporter
  await b.stop({ graceful: true, timeout: 10000 })
  await side.end()
}

async function pickup (adminUrl, samples) {
  const b = producer(adminUrl)
  await b.start()
  const c = await client(adminUrl)
  for (let i = 0; i < samples; i++) {
    await b.send(PING, { kind: 'ping', sent_at: now() })
    const deadline = performance.now() + 10000
    while (performance.now() < deadline) {
      const { rows } = await c.query('SELECT count(*)::int AS n FROM bench_pickups')
      if (rows[0].n > i) break
      await sleep(5)
    }
    await sleep(10) // idle again, as for the others
  }
  const { rows } = await c.query('SELECT (started_at - sent_at) * 1000 AS ms FROM bench_pickups')
  await c.end()
  await b.stop({ graceful: false })
  say('pickups', ...rows.map(row => row.ms))
}

async function main () {
  const [adminUrl, command, ...rest] = process.argv.slice(2)
  if (command === 'version') {
    const version = requireHere('pg-boss/package.json').version
    say('version', version, process.version.replace(/^v/, ''))
  } else if (command === 'setup') {
    await setup(adminUrl)
  } else if (command === 'drop') {
    await admin(adminUrl, [`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`])
  } else if (command === 'enqueue') {
    await enqueue(adminUrl, Number(rest[0]), Number(rest[1]))
  } else if (command === 'fill') {
    await fill(adminUrl, Number(rest[0]), rest[1] === 'analyze')
  } else if (command === 'worker') {
    await worker(adminUrl, Number(rest[0] || 0))
  } else if (command === 'pickup') {
    await pickup(adminUrl, Number(rest[0]))
  } else {
    console.error('usage: node pgboss.mjs ADMIN_URL setup|version|drop|enqueue|fill|worker|pickup ...')
    process.exit(2)
  }
}

await main()
