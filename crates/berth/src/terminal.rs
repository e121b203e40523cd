//! The local terminal: raw mode for `-t` (restored on drop, so also on errors and
//! panics), its window size, and stdin read on a thread of its own (a blocking read
//! must not hold the async runtime open at exit).

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;

use tokio::sync::mpsc;

/// Raw mode on stdin while it lives; the previous mode comes back on drop.
#[derive(Debug)]
pub struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Puts stdin into raw mode when it is a terminal (`None` otherwise).
    pub fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let fd = stdin.as_fd();
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin().as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// The size of the terminal on stdout (or stdin), `[height, width]`; `None` when
/// neither is a terminal.
pub fn size() -> Option<[u16; 2]> {
    let try_fd = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| [w.ws_row, w.ws_col])
    };
    try_fd(std::io::stdout().as_fd()).or_else(|| try_fd(std::io::stdin().as_fd()))
}

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Reads stdin on a thread; chunks arrive on the channel, which closes at EOF.
pub fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            use std::io::Read as _;
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
    if spawned.is_err() {
        // no thread: behave as an empty stdin
        return mpsc::channel(1).1;
    }
    rx
}
