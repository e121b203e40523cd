//! `InteractiveSpec`: the part of a [`crate::spec::ContainerSpec`] about attaching to a
//! container — Docker's `StdinOnce`, `Attach{Stdin,Stdout,Stderr}` and
//! `HostConfig.ConsoleSize` (`Tty` and `OpenStdin` are in the spec itself).

use serde::{Deserialize, Serialize};

/// How clients attach to the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InteractiveSpec {
    /// Close the container's stdin when the attached client's stdin ends (`run -i`).
    pub stdin_once: bool,
    /// `AttachStdin`.
    pub attach_stdin: bool,
    /// `AttachStdout`.
    pub attach_stdout: bool,
    /// `AttachStderr`.
    pub attach_stderr: bool,
    /// The pty's size at start, `[height, width]` (`HostConfig.ConsoleSize`); zeros
    /// mean unknown.
    pub console_size: [u16; 2],
}
