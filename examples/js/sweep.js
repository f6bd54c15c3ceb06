// A parameter sweep in JavaScript: one task per block of 20 000 integers. Each task counts the
// primes in its block (a segmented sieve), finds the number with the longest Collatz chain and
// prints one JSON line. Run with QuickJS for WASI by examples/js-sweep.toml; the same script
// gives the same lines under node (`node examples/js/sweep.js 3`).
const BLOCK = 20000;
const argv = typeof args !== 'undefined' ? args : process.argv.slice(1);
const index = parseInt(argv[1], 10);
const lo = index * BLOCK + 2;
const hi = lo + BLOCK;

function primesIn(lo, hi) {
  const limit = Math.floor(Math.sqrt(hi)) + 1;
  const small = new Uint8Array(limit + 1);
  const base = [];
  for (let i = 2; i <= limit; i++) {
    if (!small[i]) {
      base.push(i);
      for (let j = i * i; j <= limit; j += i) small[j] = 1;
    }
  }
  const composite = new Uint8Array(hi - lo);
  for (const p of base) {
    let start = Math.max(p * p, Math.ceil(lo / p) * p);
    for (let j = start; j < hi; j += p) composite[j - lo] = 1;
  }
  let count = 0;
  let last = 0;
  for (let n = lo; n < hi; n++) {
    if (!composite[n - lo]) {
      count++;
      last = n;
    }
  }
  return { count, last };
}

function collatz(n) {
  let steps = 0;
  while (n !== 1) {
    n = n % 2 === 0 ? n / 2 : 3 * n + 1;
    steps++;
  }
  return steps;
}

const primes = primesIn(lo, hi);
let longest = { start: lo, steps: 0 };
for (let n = lo; n < hi; n++) {
  const steps = collatz(n);
  if (steps > longest.steps) longest = { start: n, steps };
}
const line = JSON.stringify({
  block: [lo, hi],
  primes: primes.count,
  largest_prime: primes.last,
  longest_collatz: longest,
});
if (typeof print !== 'undefined') print(line); else console.log(line);
