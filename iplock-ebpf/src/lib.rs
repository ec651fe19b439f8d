// Exists so that `iplock` can name this crate as a build dependency, which
// makes cargo rebuild the XDP program when its sources change.
#![no_std]
