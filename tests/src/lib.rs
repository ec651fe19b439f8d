//! Harness of the end-to-end tests: a server and a client network namespace
//! joined by a veth pair, a TCP echo listener on the protected port, client
//! connects and knocks from chosen source addresses, and a runner for the
//! `iplock` binary with its own pin directory.
//!
//! Every resource is a guard that cleans up on drop, so a failing test leaves
//! no namespace, process or pin behind; names carry the pid and a counter so
//! tests run in parallel.

pub mod crowdsec;
pub mod daemon;
pub mod frame;
pub mod iplock;
pub mod knockers;
pub mod lock;
pub mod net;
pub mod netns;
pub mod output;
pub mod privileged;
pub mod rng;
pub mod scan;
pub mod status;
pub mod util;
pub mod wait;

pub use daemon::Daemon;
pub use iplock::{Iplock, Mode};
pub use net::{EchoServer, echo, knock_tcp, knock_udp, try_connect};
pub use netns::{
    CLIENT_V4, CLIENT_V6, NetnsPair, OTHER_V4, OTHER_V6, SERVER_V4, SERVER_V6, in_netns, link_json,
};
pub use output::{assert_exit, describe, one_stderr_line};
pub use privileged::{require_python_module, require_root, require_tools};
pub use util::{ChildGuard, TempDir, run_bounded, run_ok, unique_id};
pub use wait::wait_for;

/// The knock sequence most tests load and send.
pub const KNOCK: &str = "tcp:100,udp:300,tcp:200";

/// A config file that turns off the bans of wrong knocks and of SYNs to the
/// closed door, so a failed attempt leaves its source free to try again.
pub const NO_BANS: &str = "[ban]\nwrong_knock = false\nclosed_door = false\n";

/// Generates two `#[test]`s per listed function, `native::NAME` and
/// `skb::NAME`, each calling `NAME(mode)` after the privileged guard, so every
/// behaviour is shown in both XDP attach modes.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),+ $(,)?) => {
        mod native {
            $(
                #[test]
                fn $name() {
                    if $crate::require_root() {
                        super::$name($crate::Mode::Native);
                    }
                }
            )+
        }
        mod skb {
            $(
                #[test]
                fn $name() {
                    if $crate::require_root() {
                        super::$name($crate::Mode::Skb);
                    }
                }
            )+
        }
    };
}
