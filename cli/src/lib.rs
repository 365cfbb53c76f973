//! Server-side parts of the `norman` program that its integration tests also use: the receiving
//! end of the upload stream (`norman serve`, `norman receive`). The library itself never links them.

pub mod receiver;
