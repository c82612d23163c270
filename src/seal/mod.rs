//! Sealing: the canonical encoding, commitments, the MAC chain and the
//! forward-secure keys.

mod chain;
mod digest;
mod encoding;
mod key_file;
mod keys;
mod sealing_key;

pub use chain::{EntryDraft, Sealer};
pub(crate) use chain::{genesis_fields, rotation_fields, seal_body, seal_fields, with_salts};
pub use digest::{Digest, Mac, Salt};
pub use encoding::{
    FORMAT_V1, FORMAT_V2, FORMAT_VERSION, MacInput, body_commitment, encode_body, field_commitment,
    format_timestamp, genesis_prev_mac, truncate_to_micros,
};
pub use key_file::key_file_exposure;
pub use keys::{
    DEFAULT_EPOCH_SECONDS, EpochSchedule, KEY_LEN, KeyLine, SEALING_KEY_FILE,
    VERIFICATION_KEY_FILE, VerificationKey, describe_schedule, new_key_id,
};
pub(crate) use keys::{EpochKey, KeyDeriver};
pub(crate) use sealing_key::Registration;
pub use sealing_key::SealingKey;
