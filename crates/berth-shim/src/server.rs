//! The shim's single-threaded poll loop: container output → log and attached clients,
//! clients' input → the container's (or an exec's) stdin, resize requests, and exec
//! sessions (started here, so `Container::exec` runs in a single-threaded process).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use berth_runtime::{Container, ExecOpts};

use crate::monitor::ContainerHandle;
use oci_spec::runtime::Process;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;

use crate::logfile::{JsonLog, Stream};
use crate::proto::{self, Hello, Status};

/// How long a write to a client may block before the client is dropped.
const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Stdin bytes buffered for a process before clients stop being read.
const STDIN_HIGH_WATER: usize = 256 * 1024;

/// A process's stdio as the shim holds it: a pty master, or pipes.
#[derive(Debug, Default)]
pub struct Proc {
    /// The pty master (reads are output, writes are input).
    pub master: Option<OwnedFd>,
    /// The write end of its stdin pipe.
    pub stdin: Option<OwnedFd>,
    /// The read ends of its stdout and stderr pipes.
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// Input not yet written.
    pub pending: Vec<u8>,
    /// Close stdin once `pending` is written.
    pub close_stdin: bool,
    /// Close stdin when an attached client sends EOF (`StdinOnce`; always for exec).
    pub stdin_once: bool,
}

impl Proc {
    fn output_done(&self) -> bool {
        self.master.is_none() && self.out.is_none() && self.err.is_none()
    }

    fn input_fd(&self) -> Option<BorrowedFd<'_>> {
        self.master
            .as_ref()
            .or(self.stdin.as_ref())
            .map(|f| f.as_fd())
    }

    fn push_input(&mut self, data: &[u8]) {
        if self.input_fd().is_some() {
            self.pending.extend_from_slice(data);
        }
    }

    fn eof(&mut self) {
        // a pty stays open: its master carries the output too
        if self.stdin_once && self.master.is_none() {
            self.close_stdin = true;
            self.flush_input();
        }
    }

    /// Writes what it can of the pending input without blocking.
    fn flush_input(&mut self) {
        while !self.pending.is_empty() {
            let Some(fd) = self.input_fd() else {
                self.pending.clear();
                break;
            };
            match rustix::io::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    // the reader is gone
                    self.pending.clear();
                    self.stdin = None;
                }
            }
        }
        if self.close_stdin {
            self.stdin = None;
        }
    }
}

/// What a client is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Hello not read yet.
    Unknown,
    Container {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Exec(String),
}

#[derive(Debug)]
struct Client {
    sock: OwnedFd,
    inbuf: Vec<u8>,
    target: Target,
    dead: bool,
}

impl Client {
    fn new(sock: OwnedFd) -> Client {
        let _ = rustix::net::sockopt::set_socket_timeout(
            &sock,
            rustix::net::sockopt::Timeout::Send,
            Some(CLIENT_SEND_TIMEOUT),
        );
        Client {
            sock,
            inbuf: Vec::new(),
            target: Target::Unknown,
            dead: false,
        }
    }

    /// Sends a whole frame (blocking, bounded by the send timeout); a failure drops
    /// the client.
    fn send(&mut self, bytes: &[u8]) {
        if self.dead {
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            match rustix::net::send(&self.sock, rest, rustix::net::SendFlags::NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }
}

/// A process started by `exec`.
#[derive(Debug)]
struct Exec {
    id: String,
    proc: Proc,
    pid: i32,
    pidfd: Option<OwnedFd>,
    exit: Option<i32>,
}

/// Everything the loop owns.
pub struct Server {
    pub dirfd: OwnedFd,
    pub listener: Option<OwnedFd>,
    pub main: Proc,
    pub log: JsonLog,
    /// The shim's own stdio targets, restored after an exec borrowed 0-2.
    pub devnull: OwnedFd,
    pub shim_log: OwnedFd,
    clients: Vec<Client>,
    execs: Vec<Exec>,
    seq: u64,
}

fn set_nonblocking(fd: impl AsFd) {
    let _ = rustix::io::ioctl_fionbio(fd, true);
}

/// Reads one chunk; `None` at EOF or on an error that ends the stream (EIO is a pty
/// whose slave side is all closed), `Some(empty)` when nothing is there right now.
fn read_chunk(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Option<usize> {
    match rustix::io::read(fd, buf) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(Errno::INTR | Errno::AGAIN) => Some(0),
        Err(_) => None,
    }
}

#[derive(Clone, Copy)]
enum Tok {
    Listener,
    MainMaster,
    MainOut,
    MainErr,
    MainIn,
    ExecMaster(usize),
    ExecOut(usize),
    ExecErr(usize),
    ExecIn(usize),
    ExecPid(usize),
    Client(usize),
}

impl Server {
    pub fn new(
        dirfd: OwnedFd,
        listener: Option<OwnedFd>,
        main: Proc,
        log: JsonLog,
        devnull: OwnedFd,
        shim_log: OwnedFd,
    ) -> Server {
        if let Some(l) = &listener {
            set_nonblocking(l);
        }
        for fd in [&main.master, &main.stdin, &main.out, &main.err]
            .into_iter()
            .flatten()
        {
            set_nonblocking(fd);
        }
        Server {
            dirfd,
            listener,
            main,
            log,
            devnull,
            shim_log,
            clients: Vec::new(),
            execs: Vec::new(),
            seq: 0,
        }
    }

    /// Accepts the clients berthd connected before the container was started (they wait
    /// in the listener's backlog) and reads their hellos. Called before the first read of
    /// the container's output (which waits in its pipes or pty meanwhile), so they see
    /// its very first byte.
    pub fn accept_early(&mut self, container: &mut ContainerHandle) {
        self.accept();
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            let _ = rustix::net::sockopt::set_socket_timeout(
                &c.sock,
                rustix::net::sockopt::Timeout::Recv,
                Some(Duration::from_secs(2)),
            );
            let mut buf = [0u8; 4096];
            while !c.inbuf.contains(&b'\n') {
                match rustix::net::recv(&c.sock, &mut buf, rustix::net::RecvFlags::empty()) {
                    Ok((n, _)) if n > 0 => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(Errno::INTR) => {}
                    _ => break,
                }
            }
            self.process_client(i, container);
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        loop {
            match rustix::net::accept_with(l, rustix::net::SocketFlags::CLOEXEC) {
                Ok(s) => self.clients.push(Client::new(s)),
                Err(Errno::INTR) => {}
                Err(_) => break,
            }
        }
    }

    /// Serves until the container's output has ended and every exec is over.
    pub fn run(&mut self, container: &mut ContainerHandle) {
        let mut buf = vec![0u8; 32 * 1024];
        while !(self.main.output_done() && self.execs.is_empty()) {
            let mut toks = Vec::new();
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            let inn = PollFlags::IN;
            if let Some(l) = &self.listener {
                toks.push(Tok::Listener);
                fds.push(PollFd::new(l, inn));
            }
            let m = &self.main;
            if let Some(f) = &m.master {
                let fl = if m.pending.is_empty() {
                    inn
                } else {
                    inn | PollFlags::OUT
                };
                toks.push(Tok::MainMaster);
                fds.push(PollFd::new(f, fl));
            }
            if let Some(f) = &m.out {
                toks.push(Tok::MainOut);
                fds.push(PollFd::new(f, inn));
            }
            if let Some(f) = &m.err {
                toks.push(Tok::MainErr);
                fds.push(PollFd::new(f, inn));
            }
            if let Some(f) = &m.stdin
                && !m.pending.is_empty()
            {
                toks.push(Tok::MainIn);
                fds.push(PollFd::new(f, PollFlags::OUT));
            }
            for (i, e) in self.execs.iter().enumerate() {
                let p = &e.proc;
                if let Some(f) = &p.master {
                    let fl = if p.pending.is_empty() {
                        inn
                    } else {
                        inn | PollFlags::OUT
                    };
                    toks.push(Tok::ExecMaster(i));
                    fds.push(PollFd::new(f, fl));
                }
                if let Some(f) = &p.out {
                    toks.push(Tok::ExecOut(i));
                    fds.push(PollFd::new(f, inn));
                }
                if let Some(f) = &p.err {
                    toks.push(Tok::ExecErr(i));
                    fds.push(PollFd::new(f, inn));
                }
                if let Some(f) = &p.stdin
                    && !p.pending.is_empty()
                {
                    toks.push(Tok::ExecIn(i));
                    fds.push(PollFd::new(f, PollFlags::OUT));
                }
                if let Some(f) = &e.pidfd {
                    toks.push(Tok::ExecPid(i));
                    fds.push(PollFd::new(f, inn));
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                // back-pressure: a process that does not read its stdin stops its
                // clients from being read (their bytes wait in the socket)
                let full = match &c.target {
                    Target::Container { .. } => self.main.pending.len() > STDIN_HIGH_WATER,
                    Target::Exec(id) => self
                        .execs
                        .iter()
                        .find(|e| &e.id == id)
                        .is_some_and(|e| e.proc.pending.len() > STDIN_HIGH_WATER),
                    Target::Unknown => false,
                };
                if !full {
                    toks.push(Tok::Client(i));
                    fds.push(PollFd::new(&c.sock, inn));
                }
            }
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("berth-shim: poll: {e}");
                    return;
                }
            }
            let ready: Vec<(Tok, PollFlags)> = toks
                .iter()
                .zip(fds.iter())
                .filter(|(_, f)| !f.revents().is_empty())
                .map(|(t, f)| (*t, f.revents()))
                .collect();
            drop(fds);
            for (tok, rev) in ready {
                self.handle(tok, rev, &mut buf, container);
            }
            self.reap_execs();
            self.clients.retain(|c| !c.dead);
        }
    }

    fn handle(
        &mut self,
        tok: Tok,
        rev: PollFlags,
        buf: &mut [u8],
        container: &mut ContainerHandle,
    ) {
        let readable = rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
        match tok {
            Tok::Listener => self.accept(),
            Tok::MainMaster => {
                if rev.contains(PollFlags::OUT) {
                    self.main.flush_input();
                }
                if readable {
                    self.main_output(Stream::Stdout, true, buf);
                }
            }
            Tok::MainOut => self.main_output(Stream::Stdout, false, buf),
            Tok::MainErr => self.main_output(Stream::Stderr, false, buf),
            Tok::MainIn => self.main.flush_input(),
            Tok::ExecMaster(i) => {
                if rev.contains(PollFlags::OUT) {
                    self.execs[i].proc.flush_input();
                }
                if readable {
                    self.exec_output(i, 0, buf);
                }
            }
            Tok::ExecOut(i) => self.exec_output(i, 1, buf),
            Tok::ExecErr(i) => self.exec_output(i, 2, buf),
            Tok::ExecIn(i) => self.execs[i].proc.flush_input(),
            Tok::ExecPid(i) => {
                let e = &mut self.execs[i];
                e.pidfd = None;
                let pid = rustix::process::Pid::from_raw(e.pid);
                let st = pid.and_then(|p| {
                    rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty())
                        .ok()
                        .flatten()
                });
                e.exit = Some(
                    st.map(|(_, s)| berth_runtime::exit_code_of(s))
                        .unwrap_or(255),
                );
            }
            Tok::Client(i) => self.client_input(i, buf, container),
        }
    }

    fn main_output(&mut self, stream: Stream, pty: bool, buf: &mut [u8]) {
        let fd = match (pty, stream) {
            (true, _) => self.main.master.as_ref(),
            (false, Stream::Stdout) => self.main.out.as_ref(),
            (false, Stream::Stderr) => self.main.err.as_ref(),
        };
        let Some(fd) = fd else { return };
        match read_chunk(fd.as_fd(), buf) {
            Some(0) => {}
            Some(n) => {
                let data = &buf[..n];
                self.log.write(stream, data);
                let kind = if stream == Stream::Stdout {
                    proto::STDOUT
                } else {
                    proto::STDERR
                };
                let f = proto::frame(kind, data);
                for c in &mut self.clients {
                    if let Target::Container { stdout, stderr, .. } = c.target {
                        let wanted = if kind == proto::STDOUT {
                            stdout
                        } else {
                            stderr
                        };
                        if wanted {
                            c.send(&f);
                        }
                    }
                }
            }
            None => {
                self.log.flush_partial(stream);
                match (pty, stream) {
                    (true, _) => {
                        self.main.master = None;
                        self.main.pending.clear();
                    }
                    (false, Stream::Stdout) => self.main.out = None,
                    (false, Stream::Stderr) => self.main.err = None,
                }
            }
        }
    }

    /// `which`: 0 the pty, 1 stdout, 2 stderr.
    fn exec_output(&mut self, i: usize, which: u8, buf: &mut [u8]) {
        let e = &mut self.execs[i];
        let fd = match which {
            0 => e.proc.master.as_ref(),
            1 => e.proc.out.as_ref(),
            _ => e.proc.err.as_ref(),
        };
        let Some(fd) = fd else { return };
        match read_chunk(fd.as_fd(), buf) {
            Some(0) => {}
            Some(n) => {
                let kind = if which == 2 {
                    proto::STDERR
                } else {
                    proto::STDOUT
                };
                let f = proto::frame(kind, &buf[..n]);
                let id = e.id.clone();
                for c in &mut self.clients {
                    if c.target == Target::Exec(id.clone()) {
                        c.send(&f);
                    }
                }
            }
            None => match which {
                0 => {
                    e.proc.master = None;
                    e.proc.pending.clear();
                }
                1 => e.proc.out = None,
                _ => e.proc.err = None,
            },
        }
    }

    /// Execs whose process exited and whose output is drained report and go.
    fn reap_execs(&mut self) {
        let mut i = 0;
        while i < self.execs.len() {
            let e = &self.execs[i];
            match e.exit {
                Some(code) if e.proc.output_done() => {
                    let id = e.id.clone();
                    let f = proto::status_frame(&Status::Exited { exit_code: code });
                    for c in &mut self.clients {
                        if c.target == Target::Exec(id.clone()) {
                            c.send(&f);
                            c.dead = true;
                        }
                    }
                    self.execs.remove(i);
                }
                _ => i += 1,
            }
        }
    }

    fn client_input(&mut self, i: usize, buf: &mut [u8], container: &mut ContainerHandle) {
        let c = &mut self.clients[i];
        match rustix::net::recv(&c.sock, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => {
                // closed without a stdin EOF frame: a detach, stdin stays open
                c.dead = true;
                return;
            }
            Ok((n, _)) => c.inbuf.extend_from_slice(&buf[..n]),
            Err(Errno::INTR | Errno::AGAIN) => return,
            Err(_) => {
                c.dead = true;
                return;
            }
        }
        self.process_client(i, container);
    }

    /// Acts on what a client has sent: its hello, then stdin frames.
    fn process_client(&mut self, i: usize, container: &mut ContainerHandle) {
        if self.clients[i].target == Target::Unknown {
            let Some(hello) = proto::take_hello(&mut self.clients[i].inbuf) else {
                return;
            };
            match hello {
                Err(e) => {
                    let c = &mut self.clients[i];
                    c.send(&proto::status_frame(&Status::Error { error: &e }));
                    c.dead = true;
                    return;
                }
                Ok(Hello::Attach {
                    stdin,
                    stdout,
                    stderr,
                }) => {
                    self.clients[i].target = Target::Container {
                        stdin,
                        stdout,
                        stderr,
                    };
                }
                Ok(Hello::Resize {
                    height,
                    width,
                    exec,
                }) => {
                    let r = self.resize(exec.as_deref(), height, width);
                    let c = &mut self.clients[i];
                    match r {
                        Ok(()) => c.send(&proto::status_frame(&Status::Ok { ok: true })),
                        Err(e) => c.send(&proto::status_frame(&Status::Error { error: &e })),
                    }
                    c.dead = true;
                    return;
                }
                Ok(Hello::Exec { id, process, stdin }) => {
                    self.seq += 1;
                    let started = match container.get() {
                        Ok(ctr) => self.start_exec(ctr, &id, &process, stdin),
                        Err(e) => Err((format!("cannot load the container: {e}"), 126)),
                    };
                    match started {
                        Ok(e) => {
                            let pid = e.pid;
                            self.execs.push(e);
                            let c = &mut self.clients[i];
                            c.target = Target::Exec(id);
                            c.send(&proto::status_frame(&Status::Started { pid }));
                        }
                        Err((error, exit_code)) => {
                            let c = &mut self.clients[i];
                            c.send(&proto::status_frame(&Status::Failed {
                                error: &error,
                                exit_code,
                            }));
                            c.dead = true;
                            return;
                        }
                    }
                }
            }
        }
        while let Some((kind, payload)) = proto::take_frame(&mut self.clients[i].inbuf) {
            if kind != proto::STDIN {
                continue;
            }
            let target = self.clients[i].target.clone();
            let proc = match &target {
                Target::Container { stdin: true, .. } => Some(&mut self.main),
                Target::Exec(id) => self
                    .execs
                    .iter_mut()
                    .find(|e| &e.id == id)
                    .map(|e| &mut e.proc),
                _ => None,
            };
            let Some(p) = proc else { continue };
            if payload.is_empty() {
                p.eof();
            } else {
                p.push_input(&payload);
                p.flush_input();
            }
        }
    }

    fn resize(&self, exec: Option<&str>, height: u16, width: u16) -> Result<(), String> {
        let master = match exec {
            None => self.main.master.as_ref(),
            Some(id) => self
                .execs
                .iter()
                .find(|e| e.id == id)
                .ok_or_else(|| format!("no such exec: {id}"))?
                .proc
                .master
                .as_ref(),
        };
        let m = master.ok_or_else(|| "the process has no tty to resize".to_owned())?;
        let ws = rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(m, ws).map_err(|e| format!("cannot resize the tty: {e}"))
    }

    /// A path in the container directory short enough for a unix socket address.
    fn dir_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.dirfd.as_raw_fd()))
    }

    /// Starts an exec: its stdio on new pipes (or a pty through a console socket), the
    /// process cloned while the shim's 0-2 point at them, then the shim's restored.
    fn start_exec(
        &mut self,
        container: &Container,
        id: &str,
        process: &Process,
        stdin: bool,
    ) -> Result<Exec, (String, i32)> {
        let sys = |what: &str, e: Errno| (format!("{what}: {e}"), 126);
        let tty = process.terminal().unwrap_or(false);
        let mut p = Proc {
            stdin_once: true,
            ..Proc::default()
        };
        let mut opts = ExecOpts::default();
        let mut console = None;
        let (mut child_in, mut child_out, mut child_err) = (None, None, None);
        if tty {
            let path = self.dir_path(&format!("exec-{}.sock", self.seq));
            let _ = std::fs::remove_file(&path);
            let l = crate::listen_unix(&path).map_err(|e| (e, 126))?;
            opts.console_socket = Some(path.clone());
            console = Some((l, path));
        } else {
            let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
            let (or, ow) = pipe().map_err(|e| sys("pipe", e))?;
            let (er, ew) = pipe().map_err(|e| sys("pipe", e))?;
            p.out = Some(or);
            p.err = Some(er);
            child_out = Some(ow);
            child_err = Some(ew);
            if stdin {
                let (ir, iw) = pipe().map_err(|e| sys("pipe", e))?;
                p.stdin = Some(iw);
                child_in = Some(ir);
            }
        }
        let devnull = &self.devnull;
        let r = (|| {
            rustix::stdio::dup2_stdin(child_in.as_ref().unwrap_or(devnull))?;
            rustix::stdio::dup2_stdout(child_out.as_ref().unwrap_or(devnull))?;
            rustix::stdio::dup2_stderr(child_err.as_ref().unwrap_or(devnull))?;
            Ok::<(), Errno>(())
        })();
        let started = match r {
            Ok(()) => container.exec(process, &opts),
            Err(e) => Err(berth_runtime::Error::Sys {
                what: "dup2",
                source: e.into(),
            }),
        };
        let _ = rustix::stdio::dup2_stdin(&self.devnull);
        let _ = rustix::stdio::dup2_stdout(&self.shim_log);
        let _ = rustix::stdio::dup2_stderr(&self.shim_log);
        drop((child_in, child_out, child_err));
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                if let Some((_, path)) = &console {
                    let _ = std::fs::remove_file(path);
                }
                let code = match &e {
                    berth_runtime::Error::Init(ie) => ie.exit_code().unwrap_or(126),
                    _ => 126,
                };
                return Err((format!("OCI runtime exec failed: {e}"), code));
            }
        };
        if let Some((l, path)) = console {
            let got = rustix::net::accept_with(&l, rustix::net::SocketFlags::CLOEXEC)
                .map_err(|e| sys("accept console", e))
                .and_then(|s| {
                    berth_sys::recv_fd(s.as_fd())
                        .map_err(|e| (format!("receive the exec's pty: {e}"), 126))
                });
            let _ = std::fs::remove_file(&path);
            p.master = Some(got?.0);
        }
        for fd in [&p.master, &p.stdin, &p.out, &p.err].into_iter().flatten() {
            set_nonblocking(fd);
        }
        let pidfd = rustix::process::Pid::from_raw(pid).and_then(|x| {
            rustix::process::pidfd_open(x, rustix::process::PidfdFlags::empty()).ok()
        });
        // without a pidfd (cannot happen for our own child) the exit is waited for now
        let exit = if pidfd.is_none() {
            Some(
                rustix::process::Pid::from_raw(pid)
                    .and_then(|x| {
                        rustix::process::waitpid(Some(x), rustix::process::WaitOptions::empty())
                            .ok()
                            .flatten()
                    })
                    .map(|(_, s)| berth_runtime::exit_code_of(s))
                    .unwrap_or(255),
            )
        } else {
            None
        };
        Ok(Exec {
            id: id.to_owned(),
            proc: p,
            pid,
            pidfd,
            exit,
        })
    }

    /// Hands the clients over, to be closed once the exit is recorded.
    pub fn take_clients(&mut self) -> Vec<OwnedFd> {
        self.clients.drain(..).map(|c| c.sock).collect()
    }
}
