//! Names that are stored and shown: each has one spelling, kept by `as_str` and parsed back by
//! `FromStr`, and serialized with the same spelling.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stored name that is not one of the type's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

macro_rules! names {
    ($(#[$meta:meta])* $kind:literal, $type:ident { $($(#[$vmeta:meta])* $variant:ident = $name:literal,)* }) => {
        $(#[$meta])*
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $type {
            $($(#[$vmeta])* #[serde(rename = $name)] $variant,)*
        }

        impl $type {
            /// Every value, in declaration order.
            pub const ALL: &'static [$type] = &[$($type::$variant,)*];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $name,)*
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($type::$variant),)*
                    other => Err(UnknownName { kind: $kind, name: other.to_owned() }),
                }
            }
        }
    };
}

names! {
    /// Why a recording ended.
    "end reason", EndReason {
        /// The recording client sent BYE.
        Bye = "bye",
        /// An active stream sent no RTP for `rtp_timeout_ms`: we sent BYE.
        RtpTimeout = "rtp-timeout",
        /// The session timer (RFC 4028) ran out without a refresh: we sent BYE.
        SessionExpired = "session-expired",
        /// Our 200 OK to the INVITE was never acknowledged.
        AckTimeout = "ack-timeout",
        /// The server was stopped (SIGTERM): we sent BYE.
        Shutdown = "shutdown",
        /// The call reached `max_call_duration`: we sent BYE.
        MaxDuration = "max-duration",
        /// Every stream was on hold for `max_hold`: we sent BYE.
        MaxHold = "max-hold",
        /// A leg's file could not be written (disk full, I/O error): we sent BYE.
        WriteFailed = "write-failed",
        /// The process ended without closing the recording (crash, kill -9, power cut); found
        /// by the next start of the same node.
        Crash = "crash",
        /// Found on disk with no catalog row at start (the row was lost): catalogued from its
        /// files.
        Recovered = "recovered",
        /// Pass-through: the call was never answered (busy, declined, cancelled, no answer,
        /// target unreachable); its `final_status` says how.
        NotAnswered = "not-answered",
    }
}

names! {
    /// How a call reached the recorder.
    "recording mode", RecordingMode {
        /// A recording session (RFC 7866) forked to us by an SBC or PBX.
        Siprec = "siprec",
        /// Routed through us (a `[[routes]]` route): we are a B2BUA in the call path.
        Passthrough = "passthrough",
    }
}

names! {
    /// Which side of a pass-through call hung up.
    "party", Party {
        /// The side whose INVITE reached us.
        Caller = "caller",
        /// The side we sent our INVITE to.
        Callee = "callee",
    }
}

names! {
    /// Where a DTMF digit was captured.
    "DTMF source", DtmfSource {
        /// RFC 4733 telephone-event packets on a leg.
        Rfc4733 = "rfc4733",
        /// A SIP INFO in the recording dialog (`application/dtmf-relay` or `application/dtmf`).
        SipInfo = "sip-info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for reason in EndReason::ALL {
            assert_eq!(reason.as_str().parse::<EndReason>(), Ok(*reason));
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::Value::String(reason.as_str().to_owned())
            );
        }
        for source in DtmfSource::ALL {
            assert_eq!(source.as_str().parse::<DtmfSource>(), Ok(*source));
        }
        assert_eq!(
            "BYE".parse::<EndReason>(),
            Err(UnknownName {
                kind: "end reason",
                name: "BYE".to_owned()
            })
        );
    }
}
