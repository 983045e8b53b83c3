//! Transfer specs (placeholder: being written).
