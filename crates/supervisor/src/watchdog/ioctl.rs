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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_linux_watchdog_h() {
        // The values the kernel headers expand to on x86_64 and aarch64.
        assert_eq!(WDIOC_KEEPALIVE as u64, 0x8004_5705);
        assert_eq!(WDIOC_SETTIMEOUT as u64, 0xc004_5706);
    }

    #[test]
    fn a_device_without_the_watchdog_api_refuses_the_ioctls() {
        // /dev/null is a character device that knows no watchdog ioctl: the calls reach the
        // kernel and come back with ENOTTY instead of doing anything.
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert_eq!(keepalive(&null), Err(rustix::io::Errno::NOTTY));
        assert_eq!(set_timeout(&null, 30), Err(rustix::io::Errno::NOTTY));
    }
}
