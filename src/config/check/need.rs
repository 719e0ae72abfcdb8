//! What a signal needs of its tag: each protocol's checks tell whether a tag of theirs fits.

/// What a signal needs of its tag.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Need {
    Bool,
    Integer,
    WritableInteger,
    /// A number to summarize: not a bool or a string.
    Number,
    /// A lot number: an unscaled integer or a string.
    Lot,
    /// Any tag.
    Any,
    /// A bool or an unscaled integer: a flag raised, or a count kept.
    Flag,
}
