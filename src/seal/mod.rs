//! Sealing: the MAC chain, the forward-secure keys, and planning what a
//! writer appends. The byte format is specified in `docs/FORMAT.md`.

mod chain;
mod error;
mod evolution;
mod key_file;
mod key_id;
mod plan;
mod schedule;
mod sealing_key;
mod verification_key;

pub use chain::{EntryDraft, Sealer};
pub(crate) use chain::{genesis_fields, rotation_fields, seal_fields, with_salts};
pub use error::KeyError;
pub(crate) use evolution::EpochKey;
pub use evolution::{KEY_LEN, KeyLine};
pub use key_file::key_file_exposure;
pub use key_file::{SEALING_KEY_FILE, VERIFICATION_KEY_FILE};
pub use key_id::new_key_id;
pub(crate) use plan::{
    Plan, Sealable, first_unsealed_epoch, next_position, plan_ahead, plan_append, summary_epoch,
};
pub use schedule::{DEFAULT_EPOCH_SECONDS, EpochSchedule, describe_schedule};
pub(crate) use sealing_key::Registration;
pub use sealing_key::SealingKey;
pub(crate) use verification_key::KeyDeriver;
pub use verification_key::VerificationKey;
