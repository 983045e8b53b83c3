//! Control messages: built from the input with `arbitrary`, encoded and read back
//! (`fasp_mgmt_proto::fuzzing::control_message`); and the input itself read as a frame, a
//! valid control surviving a round trip (`control_frame`), so the raw seeds in
//! `fuzz/seeds/control` stay useful.
#![no_main]

use fasp_mgmt_proto::{
    Adaptive, ByteRange, Control, DoneOperation, Priority, QueryAnswer, RateChange, StartFile,
    StopFile,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

/// The shape of every control message, for `arbitrary` to fill in.
#[derive(Arbitrary, Debug)]
enum Ctl {
    Rate {
        rate_kbps: Option<u64>,
        min_rate_kbps: Option<u64>,
        policy: Option<Policy>,
        high_priority: Option<bool>,
    },
    Cancel,
    Done {
        linger: bool,
    },
    Start {
        source: String,
        destination: String,
        range: Option<(u64, u64)>,
    },
    Stop {
        source: String,
    },
    Query {
        allowed: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum Policy {
    Fixed,
    Adaptive,
    Trickle,
}

impl From<Ctl> for Control {
    fn from(c: Ctl) -> Control {
        match c {
            Ctl::Rate {
                rate_kbps,
                min_rate_kbps,
                policy,
                high_priority,
            } => Control::Rate(RateChange {
                rate_kbps,
                min_rate_kbps,
                policy: policy.map(|p| match p {
                    Policy::Fixed => Adaptive::Fixed,
                    Policy::Adaptive => Adaptive::Adaptive,
                    Policy::Trickle => Adaptive::Trickle,
                }),
                priority: high_priority.map(|h| if h { Priority::High } else { Priority::Regular }),
            }),
            Ctl::Cancel => Control::Cancel,
            Ctl::Done { linger } => Control::Done(if linger {
                DoneOperation::Linger
            } else {
                DoneOperation::Shutdown
            }),
            Ctl::Start {
                source,
                destination,
                range,
            } => {
                let start = StartFile::new(source, destination);
                Control::Start(match range {
                    Some((start_byte, end)) => start.with_range(ByteRange {
                        start: start_byte,
                        end,
                    }),
                    None => start,
                })
            }
            Ctl::Stop { source } => Control::Stop(StopFile::new(source)),
            Ctl::Query { allowed } => Control::QueryResponse(if allowed {
                QueryAnswer::Allowed
            } else {
                QueryAnswer::Denied
            }),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ctl) = Ctl::arbitrary(&mut Unstructured::new(data)) {
        fasp_mgmt_proto::fuzzing::control_message(ctl.into());
    }
    fasp_mgmt_proto::fuzzing::control_frame(data);
});
