//! The one signal wiring of both daemons: SIGTERM and SIGINT ask to stop, SIGHUP asks to re-read
//! the policy file. A thread of `signal-hook` turns each into a [`Signal`] handed to the daemon's
//! callback, which forwards it to whatever its loop already waits on (a channel, a token), so no
//! loop polls a flag.

use std::io;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// What a signal asks of a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT (the number): finish what must be finished, save, exit 0.
    Stop(i32),
    /// SIGHUP: re-read the policy file; a bad file keeps the running settings.
    Reload,
}

impl Signal {
    /// The request a signal number carries; `None` for a signal this module does not watch.
    pub fn from_number(signo: i32) -> Option<Signal> {
        match signo {
            SIGHUP => Some(Signal::Reload),
            SIGTERM | SIGINT => Some(Signal::Stop(signo)),
            _ => None,
        }
    }
}

/// The watching thread; dropping it stops and joins the thread (the handlers stay installed, so
/// a late signal is ignored rather than killing the process).
pub struct SignalWatch {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

/// Installs the handlers and calls `on` from a thread named `signals` for every SIGTERM, SIGINT
/// and SIGHUP until the returned watch is dropped.
pub fn watch(mut on: impl FnMut(Signal) + Send + 'static) -> io::Result<SignalWatch> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signo in signals.forever() {
                if let Some(s) = Signal::from_number(signo) {
                    on(s);
                }
            }
        })?;
    Ok(SignalWatch {
        handle,
        thread: Some(thread),
    })
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// One test raises real signals at this process (two tests doing it at once would see each
    /// other's).
    #[test]
    fn hup_asks_for_a_reload_and_term_and_int_ask_to_stop() {
        let (tx, rx) = mpsc::channel();
        let w = watch(move |s| {
            let _ = tx.send(s);
        })
        .unwrap();
        let next = || rx.recv_timeout(Duration::from_secs(60)).unwrap();
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert_eq!(next(), Signal::Reload);
        signal_hook::low_level::raise(SIGTERM).unwrap();
        assert_eq!(next(), Signal::Stop(SIGTERM));
        signal_hook::low_level::raise(SIGINT).unwrap();
        assert_eq!(next(), Signal::Stop(SIGINT));
        drop(w);
        // After the watch is gone a signal neither reaches the callback nor kills the process.
        signal_hook::low_level::raise(SIGTERM).unwrap();
        assert!(
            rx.recv().is_err(),
            "the callback was dropped with the thread"
        );
        assert_eq!(Signal::from_number(signal_hook::consts::SIGUSR1), None);
    }
}
