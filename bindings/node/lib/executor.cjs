'use strict';
// A small pool of executor threads (worker_threads running lib/worker.cjs) for the blocking calls.
// A thread is ref'd only while it runs a job, so an idle pool never keeps the process alive, and
// idle threads end after a few seconds.

const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { errorOf } = require('./errors.cjs');

const IDLE_MS = 5000;

class Executor {
  constructor(library, max) {
    this.library = library;
    this.max = max;
    this.all = new Set();
    this.idle = [];
    this.queue = [];
    this.nextId = 1;
  }

  /** Runs `op(...args)` on an executor thread; resolves with the reply ({rc, msg, v, ...}). */
  run(op, args, transferList) {
    return new Promise((resolve, reject) => {
      const job = { id: this.nextId++, op, args, resolve, reject, transferList };
      const worker = this.idle.pop() || (this.all.size < this.max ? this.spawn() : null);
      if (worker) this.start(worker, job);
      else this.queue.push(job);
    });
  }

  spawn() {
    const worker = new Worker(path.join(__dirname, 'worker.cjs'), {
      workerData: { library: this.library },
      stdout: false,
      stderr: false,
    });
    worker.unref();
    worker.job = null;
    worker.idleTimer = null;
    worker.on('message', (reply) => this.done(worker, reply));
    const dead = (err) => {
      this.all.delete(worker);
      this.idle = this.idle.filter((w) => w !== worker);
      if (worker.job) {
        worker.job.reject(errorOf(901, `executor thread ended: ${err ? err.message : 'exit'}`));
        worker.job = null;
      }
    };
    worker.on('error', dead);
    worker.on('exit', () => dead(null));
    this.all.add(worker);
    return worker;
  }

  start(worker, job) {
    if (worker.idleTimer) {
      clearTimeout(worker.idleTimer);
      worker.idleTimer = null;
    }
    worker.job = job;
    worker.ref();
    worker.postMessage({ id: job.id, op: job.op, a: job.args }, job.transferList);
  }

  done(worker, reply) {
    const job = worker.job;
    worker.job = null;
    const next = this.queue.shift();
    if (next) this.start(worker, next);
    else {
      worker.unref();
      this.idle.push(worker);
      worker.idleTimer = setTimeout(() => {
        this.idle = this.idle.filter((w) => w !== worker);
        this.all.delete(worker);
        worker.terminate();
      }, IDLE_MS);
      worker.idleTimer.unref();
    }
    if (job) job.resolve(reply);
  }
}

module.exports = { Executor };
