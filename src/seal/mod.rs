//! Sealing: the MAC chain, the forward-secure keys, and planning what a
//! writer appends. The byte format is specified in `docs/FORMAT.md`.

mod chain;
mod error;
mod key_file;
mod keys;
mod plan;
mod sealing_key;

pub use chain::{EntryDraft, Sealer};
pub(crate) use chain::{genesis_fields, rotation_fields, seal_fields, with_salts};
pub use error::KeyError;
pub use key_file::key_file_exposure;
pub use keys::{
    DEFAULT_EPOCH_SECONDS, EpochSchedule, KEY_LEN, KeyLine, SEALING_KEY_FILE,
    VERIFICATION_KEY_FILE, VerificationKey, describe_schedule, new_key_id,
};
pub(crate) use keys::{EpochKey, KeyDeriver};
pub(crate) use plan::{
    Plan, Sealable, first_unsealed_epoch, next_position, plan_ahead, plan_append, summary_epoch,
};
pub(crate) use sealing_key::Registration;
pub use sealing_key::SealingKey;
