//! The two watchdog ioctls, from linux/watchdog.h (Documentation/watchdog/watchdog-api.rst).
//!
//! rustix has no named wrappers for them, and its generic `ioctl` is unsafe because the kernel
//! reads and writes through a pointer whose type only the opcode defines. This module is the
//! only place that makes those calls, and each call pairs the opcode with the `int` the kernel
//! expects for it.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::os::fd::AsFd;

use rustix::ioctl::{Getter, Updater, ioctl, opcode};

/// `WDIOC_KEEPALIVE = _IOR('W', 5, int)`: pets the watchdog.
const WDIOC_KEEPALIVE: rustix::ioctl::Opcode = opcode::read::<c_int>(b'W', 5);

/// `WDIOC_SETTIMEOUT = _IOWR('W', 6, int)`: sets the timeout in seconds; the driver writes back
/// the timeout it actually chose.
const WDIOC_SETTIMEOUT: rustix::ioctl::Opcode = opcode::read_write::<c_int>(b'W', 6);

/// Pets the watchdog open on `fd`.
pub fn keepalive(fd: impl AsFd) -> rustix::io::Result<()> {
    // SAFETY: WDIOC_KEEPALIVE is declared with an `int` argument, and Getter hands the kernel a
    // pointer to a properly sized and aligned c_int that lives across the call.
    let getter = unsafe { Getter::<WDIOC_KEEPALIVE, c_int>::new() };
    // SAFETY: as above; the fd is a borrowed open file, valid for the call.
    unsafe { ioctl(fd, getter) }.map(drop)
}

/// Asks for a timeout of `secs` seconds and returns the timeout the driver chose.
pub fn set_timeout(fd: impl AsFd, secs: u32) -> rustix::io::Result<u32> {
    let mut value = c_int::try_from(secs).unwrap_or(c_int::MAX);
    {
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one `int`; `value` is a c_int that outlives
        // the Updater and the call.
        let updater = unsafe { Updater::<WDIOC_SETTIMEOUT, c_int>::new(&mut value) };
        // SAFETY: as above; the fd is a borrowed open file, valid for the call.
        unsafe { ioctl(fd, updater) }?;
    }
    Ok(u32::try_from(value).unwrap_or(0))
}
