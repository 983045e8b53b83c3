//! Control messages, encoded and read back: see `fasp_mgmt_proto::fuzzing::control`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fasp_mgmt_proto::fuzzing::control(data));
