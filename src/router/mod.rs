//! Routing state: which subscriber ids want which topics.

pub mod retained;
pub mod trie;

pub use trie::Trie;
