//! Guests in worker processes ([`crate::SandboxConfig::worker`]).
//!
//! In-thread, a guest's fuel checks call the host (`refuel`) every [`YIELD_FUEL`] units of
//! fuel, where the sandbox looks at the wall clock and its [`Gate`]. A call, even one that
//! never happens, clobbers every caller-saved register at the check (on x86-64 all the float
//! registers), so the loops around checks keep their values in memory: `gridmint bench --only
//! kernels` measured it as most of what the sandbox costs over stock wasmtime. A worker process
//! runs guests whose checks trap instead (`meter::meter_with` without refuel; all the fuel in
//! the counter at once, so a check that finds none left is out of fuel, as the last refuel
//! would say), and the sandbox that started it bounds it from outside: `SIGKILL` at the wall
//! limit or when the gate stops the run, `SIGSTOP`/`SIGCONT` while the gate is paused and to
//! hold it to its duty cycle (CPU time read from `/proc`). Outputs and fuel are the in-thread
//! run's (`sandbox` tests `workers::*`); what a timed-out run leaves is dropped either way.
//!
//! A worker is this crate's [`serve`] in a process the embedder starts (`gridmint
//! sandbox-worker`): it reads requests on stdin and answers on stdout, each message a
//! little-endian `u64` length and a postcard body. It keeps the modules it compiled (the
//! sandbox's module cache, by hash), so a module's bytes cross the pipe once per worker. Workers
//! live between runs (one per concurrent run); one killed is replaced by a new one at the next
//! run. Each has its own temporary directory (`TMPDIR`), removed when it ends, so a killed
//! worker's working directories do not outlive it. A worker process that dies during a run
//! (not the task's doing: the operating system killed it, or wasmtime crashed) is
//! [`SandboxError::Host`]: no verdict on the task, and the provider that ran it lives on.
//!
//! [`YIELD_FUEL`]: crate::sandbox::YIELD_FUEL
//! [`Gate`]: crate::Gate

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sandbox::{Prepared, Sandbox};
use crate::{
    Gate, Outcome, Profile, RunReport, SandboxConfig, SandboxError, TaskRun, WorkerCommand,
};

/// Whether this platform runs guests in workers (it needs `SIGSTOP`, `SIGCONT` and `SIGKILL`).
pub(crate) const SUPPORTED: bool = cfg!(unix);

/// Workers kept between runs, at most.
const MAX_IDLE: usize = 64;
/// The largest message either side reads (a module, or a report with its output).
const MAX_MESSAGE: u64 = 1 << 34;
/// How often a run's parent looks at its gate while the worker runs.
const GATE_LOOK: Duration = Duration::from_millis(2);
/// How long a run's parent waits for a reply at most before it looks at the clock again.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// What the sandbox sends a worker (generic so that the sending side borrows).
#[derive(Serialize, Deserialize)]
enum Request<W, T> {
    /// First, once: the settings of the worker's sandbox.
    Setup {
        max_output_bytes: u64,
        pooling: bool,
        code_cache: Option<PathBuf>,
    },
    /// Run a module (`wasm`: its bytes, where the worker may not have them) once.
    Run {
        hash: [u8; 32],
        profile: u32,
        wasm: Option<W>,
        task: T,
    },
}

/// What a worker answers a [`Request::Run`].
#[derive(Serialize, Deserialize)]
enum Reply {
    Report(RunReport),
    /// The worker does not hold the module (it never got it, or dropped it): send it.
    NeedModule,
    Failed {
        kind: FailKind,
        message: String,
    },
}

/// A [`SandboxError`]'s kind, sent as such.
#[derive(Serialize, Deserialize)]
enum FailKind {
    InvalidModule,
    InvalidTask,
    Setup,
    Host,
}

impl FailKind {
    fn of(error: SandboxError) -> Reply {
        let (kind, message) = match error {
            SandboxError::InvalidModule(m) => (FailKind::InvalidModule, m),
            SandboxError::InvalidTask(m) => (FailKind::InvalidTask, m),
            SandboxError::Setup(m) => (FailKind::Setup, m),
            SandboxError::Host(m) => (FailKind::Host, m),
        };
        Reply::Failed { kind, message }
    }

    fn error(self, message: String) -> SandboxError {
        match self {
            FailKind::InvalidModule => SandboxError::InvalidModule(message),
            FailKind::InvalidTask => SandboxError::InvalidTask(message),
            FailKind::Setup => SandboxError::Setup(message),
            FailKind::Host => SandboxError::Host(message),
        }
    }
}

fn write_message(out: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    out.write_all(&(body.len() as u64).to_le_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// The next message; `None` at the end of the stream between messages.
fn read_message(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 8];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u64::from_le_bytes(len);
    if len > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "a message of {len} bytes (at most {MAX_MESSAGE})"
        )));
    }
    let mut body = Vec::new();
    input.take(len).read_to_end(&mut body)?;
    if body.len() as u64 != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(body))
}

/// A worker process's side: answers the requests on stdin until it closes. Call it from the
/// `main` of the command given as [`SandboxConfig::worker`] (nothing else may write to stdout).
/// `Err` when the pipe fails or a request cannot be read: the process should exit.
pub fn serve() -> Result<(), SandboxError> {
    let pipe = |e: std::io::Error| SandboxError::Setup(format!("the worker's pipe failed: {e}"));
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut sandbox: Result<Sandbox, String> = Err("the worker was not set up".into());
    while let Some(message) = read_message(&mut input).map_err(pipe)? {
        let request: Request<Vec<u8>, TaskRun> = postcard::from_bytes(&message)
            .map_err(|e| SandboxError::Setup(format!("the worker cannot read a request: {e}")))?;
        let reply = match request {
            Request::Setup {
                max_output_bytes,
                pooling,
                code_cache,
            } => {
                sandbox = Sandbox::trapping(SandboxConfig {
                    max_output_bytes,
                    pooling,
                    code_cache,
                    gate: None,
                    worker: None,
                })
                .map_err(|e| e.to_string());
                continue;
            }
            Request::Run {
                hash,
                profile,
                wasm,
                task,
            } => match &sandbox {
                Err(why) => FailKind::of(SandboxError::Setup(why.clone())),
                Ok(sandbox) => answer(sandbox, hash, profile, wasm, &task),
            },
        };
        let body = postcard::to_stdvec(&reply)
            .map_err(|e| SandboxError::Setup(format!("the worker cannot send a reply: {e}")))?;
        write_message(&mut output, &body).map_err(pipe)?;
    }
    Ok(())
}

fn answer(
    sandbox: &Sandbox,
    hash: [u8; 32],
    profile: u32,
    wasm: Option<Vec<u8>>,
    task: &TaskRun,
) -> Reply {
    let Some(profile) = Profile::from_number(profile) else {
        return FailKind::of(SandboxError::Setup(format!(
            "the worker does not know sandbox profile {profile}"
        )));
    };
    let prepared = match (sandbox.cached(hash, profile), wasm) {
        (Some(prepared), _) => prepared,
        (None, None) => return Reply::NeedModule,
        (None, Some(wasm)) => match sandbox.prepare_for(&wasm, profile) {
            Ok(prepared) => prepared,
            Err(e) => return FailKind::of(e),
        },
    };
    match sandbox.run(&prepared, task) {
        Ok(report) => Reply::Report(report),
        Err(e) => FailKind::of(e),
    }
}

/// The workers of a sandbox between runs.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Worker>>,
}

impl Pool {
    fn take(&self) -> Option<Worker> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put(&self, worker: Worker) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(worker);
        }
    }

    /// Worker processes alive between runs.
    pub(crate) fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One worker process, from the sandbox's side.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    /// Messages from its stdout (a thread reads them, so that waiting can time out).
    replies: Receiver<std::io::Result<Vec<u8>>>,
    /// Modules sent to it: `(hash, profile)`.
    known: std::collections::HashSet<([u8; 32], u32)>,
    /// Its `TMPDIR`, removed when it ends.
    _temp: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Idle (waiting for a request), or stopped for good: nothing of it is kept.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn spawn(command: &WorkerCommand, config: &SandboxConfig) -> Result<Worker, SandboxError> {
        let temp = tempfile::Builder::new()
            .prefix("gridmint-worker-")
            .tempdir()
            .map_err(|e| SandboxError::Setup(format!("cannot create a worker's temp dir: {e}")))?;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .env("TMPDIR", temp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                SandboxError::Setup(format!(
                    "cannot start the sandbox's worker {}: {e}",
                    command.program.display()
                ))
            })?;
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::Setup("a worker without pipes".into()));
        };
        let (send, replies) = std::sync::mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("sandbox-worker".into())
            .spawn(move || {
                loop {
                    let message = read_message(&mut stdout);
                    let end = !matches!(message, Ok(Some(_)));
                    let Some(message) = message.transpose() else {
                        return;
                    };
                    if send.send(message).is_err() || end {
                        return;
                    }
                }
            });
        let mut worker = Worker {
            child,
            stdin,
            replies,
            known: Default::default(),
            _temp: temp,
        };
        reader.map_err(|e| SandboxError::Setup(format!("cannot start a thread: {e}")))?;
        worker.send(&Request::<&[u8], &TaskRun>::Setup {
            max_output_bytes: config.max_output_bytes,
            pooling: config.pooling,
            code_cache: config.code_cache.clone(),
        })?;
        Ok(worker)
    }

    fn send(&mut self, request: &Request<&[u8], &TaskRun>) -> Result<(), SandboxError> {
        let body = postcard::to_stdvec(request).map_err(|e| {
            SandboxError::InvalidTask(format!("the task cannot be sent to a worker: {e}"))
        })?;
        write_message(&mut self.stdin, &body).map_err(|e| self.gone(&e.to_string()))
    }

    /// The error of a worker that ended or broke its pipe.
    fn gone(&mut self, what: &str) -> SandboxError {
        let _ = self.child.kill();
        let status = match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        };
        SandboxError::Host(format!(
            "the sandbox's worker process ended ({what}; {status}): not the task's doing"
        ))
    }

    fn pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_child(&self.child)
    }
}

/// Runs `module` in a worker ([`Sandbox::run`] when the sandbox has workers and the run can go
/// to one).
pub(crate) fn run(
    sandbox: &Sandbox,
    command: &WorkerCommand,
    module: &Prepared,
    wasm: &Arc<[u8]>,
    task: &TaskRun,
) -> Result<RunReport, SandboxError> {
    let key = (module.hash(), module.profile().number());
    let mut watch = Watch::new(sandbox.config().gate.clone(), task.wall_limit);
    let mut pooled = sandbox.workers.take();
    let mut worker = match pooled.take() {
        Some(worker) => worker,
        None => Worker::spawn(command, sandbox.config())?,
    };
    let mut resent = false;
    loop {
        let request = Request::Run {
            hash: key.0,
            profile: key.1,
            wasm: (!worker.known.contains(&key)).then_some(&wasm[..]),
            task,
        };
        if let Err(e) = worker.send(&request) {
            // An idle worker may have been killed meanwhile (out of memory): one new try.
            if resent {
                return Err(e);
            }
            resent = true;
            worker = Worker::spawn(command, sandbox.config())?;
            continue;
        }
        let message = match watch.wait(&mut worker) {
            Waited::Message(message) => message,
            Waited::Stopped => {
                let cpu = watch.cpu_since_start(&worker);
                drop(worker);
                return Ok(timed_out(watch.started.elapsed(), cpu));
            }
            Waited::Gone(what) => return Err(worker.gone(&what)),
        };
        match postcard::from_bytes::<Reply>(&message) {
            Ok(Reply::Report(report)) => {
                worker.known.insert(key);
                sandbox.workers.put(worker);
                return Ok(report);
            }
            Ok(Reply::NeedModule) if !resent => {
                worker.known.remove(&key);
                resent = true;
            }
            Ok(Reply::Failed { kind, message }) => {
                sandbox.workers.put(worker);
                return Err(kind.error(message));
            }
            Ok(Reply::NeedModule) => return Err(worker.gone("it lost a module it was sent")),
            Err(e) => return Err(worker.gone(&format!("an unreadable reply: {e}"))),
        }
    }
}

/// A run stopped by its wall limit or its gate (as an in-thread one: nothing of it kept).
fn timed_out(wall_time: Duration, cpu_time: Option<Duration>) -> RunReport {
    RunReport {
        outcome: Outcome::Timeout,
        output: Vec::new(),
        output_hash: *blake3::hash(&[]).as_bytes(),
        fuel_used: 0,
        wall_time,
        cpu_time,
        stderr: Vec::new(),
    }
}

enum Waited {
    Message(Vec<u8>),
    /// Past its wall limit, or stopped by the gate: the worker must be killed.
    Stopped,
    Gone(String),
}

/// A run's wall limit and gate, from outside the worker.
struct Watch {
    gate: Option<Arc<Gate>>,
    /// The gate's stop generation when the run started.
    stops: u64,
    wall_limit: Duration,
    started: Instant,
    /// Time the worker was held (paused, resting), which its wall limit does not count.
    held: Duration,
    /// The worker's CPU time when it last rested.
    rested: Option<Duration>,
    /// The worker's CPU time when the run began (read at its first look).
    cpu_at_start: Option<Duration>,
}

impl Watch {
    fn new(gate: Option<Arc<Gate>>, wall_limit: Duration) -> Watch {
        Watch {
            stops: gate.as_ref().map_or(0, |g| g.stops()),
            gate,
            wall_limit,
            started: Instant::now(),
            held: Duration::ZERO,
            rested: None,
            cpu_at_start: None,
        }
    }

    /// The worker's CPU time since the run began (for a run it stopped: the report of one that
    /// ends comes from the worker).
    fn cpu_since_start(&self, worker: &Worker) -> Option<Duration> {
        let now = process_cpu(worker.pid())?;
        Some(now.saturating_sub(self.cpu_at_start?))
    }

    fn wait(&mut self, worker: &mut Worker) -> Waited {
        self.cpu_at_start = process_cpu(worker.pid());
        loop {
            let ran = self.started.elapsed().saturating_sub(self.held);
            let Some(left) = self.wall_limit.checked_sub(ran).filter(|l| !l.is_zero()) else {
                return Waited::Stopped;
            };
            let look = match self.gate {
                Some(_) => GATE_LOOK,
                None => LONGEST_WAIT,
            };
            match worker.replies.recv_timeout(left.min(look)) {
                Ok(Ok(message)) => return Waited::Message(message),
                Ok(Err(e)) => return Waited::Gone(format!("its pipe failed: {e}")),
                Err(RecvTimeoutError::Disconnected) => {
                    return Waited::Gone("its pipe closed".into());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(gate) = self.gate.clone()
                && !self.hold(&gate, worker)
            {
                return Waited::Stopped;
            }
        }
    }

    /// Rests the worker by the gate's duty cycle and stops it while the gate is paused; `false`
    /// when the gate stopped the run.
    fn hold(&mut self, gate: &Gate, worker: &Worker) -> bool {
        use rustix::process::{Signal, kill_process};
        let pid = worker.pid();
        let duty = u32::from(gate.duty_percent());
        if duty < 100
            && let Some(cpu) = process_cpu(pid)
        {
            let rested = *self.rested.get_or_insert(cpu);
            let work = cpu.saturating_sub(rested);
            if work >= crate::gate::DUTY_SLICE {
                let rest = work * (100 - duty) / duty;
                let _ = kill_process(pid, Signal::STOP);
                let now = Instant::now();
                std::thread::sleep(rest);
                self.held += now.elapsed();
                let _ = kill_process(pid, Signal::CONT);
                self.rested = Some(cpu);
            }
        }
        if gate.is_paused() || gate.stops() != self.stops {
            let _ = kill_process(pid, Signal::STOP);
            let now = Instant::now();
            let open = gate.wait_open(Some(self.stops));
            self.held += now.elapsed();
            if !open {
                return false;
            }
            let _ = kill_process(pid, Signal::CONT);
        }
        true
    }
}

/// A process's CPU time (its main thread's, which runs the guest: `/proc/PID/schedstat`).
fn process_cpu(pid: rustix::process::Pid) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{}/schedstat", pid.as_raw_nonzero())).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}
