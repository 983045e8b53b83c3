//! The FASPMGR stream decoder, fed in chunks: see `fasp_mgmt_proto::fuzzing::stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fasp_mgmt_proto::fuzzing::stream(data));
