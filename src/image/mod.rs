//! Images: index parsing, fetching, verification, caching and unpacking.

pub mod arch;
pub mod budget;
pub mod cache;
pub mod catalog;
pub mod decompress;
pub mod download;
pub mod fetch;
pub mod index;
pub mod lower;
pub mod lxcconf;
pub mod lxcmigrate;
pub mod meta;
pub mod oci;
pub mod published;
pub mod server;
pub mod unpack;
