//! `norman_msg_layers`: an ordered stack of auth/cipher layers (the first added seals first, opens
//! last), copied (cheaply shared) into whatever takes it.

use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::boundary::*;
use crate::msg::{Aead, Layers, NetaioHmac, NetaioStreamCipher};

/// A stack of layers (opaque). netaio's usual instance layers: add the cipher, then the HMAC.
pub struct norman_msg_layers {
    pub(crate) layers: Layers,
}

/// The layers behind an optional handle (NULL: none).
///
/// # Safety
/// `l` is NULL or a live handle.
pub(crate) unsafe fn opt_layers(l: *const norman_msg_layers) -> Layers {
    // SAFETY: per contract.
    unsafe { l.as_ref() }.map(|l| l.layers.clone()).unwrap_or_default()
}

/// # Safety
/// As `arg_bytes`.
unsafe fn secret<'a>(p: *const u8, len: usize, name: &'static str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Err(FfiError::invalid(format!("`{name}` is empty")));
    }
    // SAFETY: forwarded contract.
    unsafe { arg_bytes(p, len, name) }
}

/// # Safety
/// `field` is NULL or NUL-terminated.
unsafe fn field_name(field: *const c_char, default: &'static str) -> FfiResult<String> {
    // SAFETY: forwarded contract.
    match unsafe { opt_str(field, "field") }? {
        None => Ok(default.to_owned()),
        Some("") => Err(FfiError::invalid("`field` is empty")),
        Some(f) => Ok(f.to_owned()),
    }
}

fn push(l: &mut norman_msg_layers, layer: impl crate::msg::Layer) {
    l.layers = std::mem::take(&mut l.layers).with(layer);
}

/// Creates an empty stack (messages in the clear).
///
/// Ownership: `*layers_out` receives a new handle; free it with `norman_msg_layers_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_new(layers_out: *mut *mut norman_msg_layers) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; writability is the caller's contract.
        let out = unsafe { Out::new(layers_out, "layers_out") }?;
        out.write(into_handle(norman_msg_layers { layers: Layers::new() }));
        Ok(())
    })
}

/// Adds netaio's HMACAuthPlugin (auth fields hmac, nonce, ts) for `secret`. `max_skew_s` 0: no
/// freshness check (netaio's behaviour); otherwise messages whose ts is further than that from now,
/// or seen before, are refused (NORMAN_ERROR_MSG_AUTH / an AUTH_ERROR reply). An empty secret is
/// NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: `secret` is borrowed and hashed (not kept, never logged). Threads: any thread, not
/// concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_add_netaio_hmac(
    l: *mut norman_msg_layers,
    secret: *const u8,
    len: usize,
    max_skew_s: u32,
) -> norman_result {
    // SAFETY: forwarded contract.
    unsafe { norman_msg_layers_add_netaio_hmac_field(l, secret, len, max_skew_s, std::ptr::null()) }
}

/// `norman_msg_layers_add_netaio_hmac` with the MAC's auth field named `hmac_field` (NULL: "hmac";
/// nonce and ts keep their names, shared with an outer HMAC as netaio nests them). An inner HMAC
/// under an outer one needs its own field: `norman msg serve --inner-secret` and netaio's inner
/// plugins use "hmac2".
///
/// Ownership: borrowed and copied. Threads: any thread, not concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_add_netaio_hmac_field(
    l: *mut norman_msg_layers,
    secret: *const u8,
    len: usize,
    max_skew_s: u32,
    hmac_field: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let l = unsafe { arg_mut(l, "layers") }?;
        let secret = unsafe { self::secret(secret, len, "secret") }?;
        let field = unsafe { field_name(hmac_field, "hmac") }?;
        let mut layer = NetaioHmac::new(secret).fields(&field, "nonce", "ts");
        if max_skew_s > 0 {
            layer = layer.freshness(Duration::from_secs(max_skew_s.into()), true);
        }
        push(l, layer);
        Ok(())
    })
}

/// Adds netaio's Sha256StreamCipherPlugin (auth field iv) for `key`; `encrypt_uri` as netaio's
/// option (true is netaio's default; an inner layer should say false so routing by uri works). It
/// has no integrity of its own: use it under an HMAC. An empty key is NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: `key` is borrowed and hashed (not kept, never logged). Threads: any thread, not
/// concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_add_netaio_cipher(
    l: *mut norman_msg_layers,
    key: *const u8,
    len: usize,
    encrypt_uri: bool,
) -> norman_result {
    // SAFETY: forwarded contract.
    unsafe { norman_msg_layers_add_netaio_cipher_field(l, key, len, encrypt_uri, std::ptr::null()) }
}

/// `norman_msg_layers_add_netaio_cipher` with the IV's auth field named `iv_field` (NULL: "iv"; an
/// inner cipher under an outer one needs its own, "iv2" for `norman msg serve --inner-cipher-key`).
///
/// Ownership: borrowed and copied. Threads: any thread, not concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_add_netaio_cipher_field(
    l: *mut norman_msg_layers,
    key: *const u8,
    len: usize,
    encrypt_uri: bool,
    iv_field: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let l = unsafe { arg_mut(l, "layers") }?;
        let key = unsafe { secret(key, len, "key") }?;
        let field = unsafe { field_name(iv_field, "iv") }?;
        push(l, NetaioStreamCipher::new(key).iv_field(&field).encrypt_uri(encrypt_uri));
        Ok(())
    })
}

/// Adds libnorman's ChaCha20-Poly1305 layer (auth field aead; type, uri and auth fields
/// authenticated, uri encrypted, 60 s timestamp window and replay cache). `key_len` must be 32,
/// else NORMAN_ERROR_INVALID_ARGUMENT. Between libnorman peers only.
///
/// Ownership: `key` is borrowed and copied (wiped when the last user of the layer goes; never
/// logged). Threads: any thread, not concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_add_aead(
    l: *mut norman_msg_layers,
    key: *const u8,
    key_len: usize,
) -> norman_result {
    // SAFETY: forwarded contract.
    unsafe { norman_msg_layers_add_aead_field(l, key, key_len, true, std::ptr::null()) }
}

/// `norman_msg_layers_add_aead` with its auth field named `field` (NULL: "aead") and the uri
/// encrypted or not: an inner AEAD (per handler or per call) under an outer one needs its own field
/// and `encrypt_uri` false, so that the server can route by uri.
///
/// Ownership: borrowed and copied. Threads: any thread, not concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_add_aead_field(
    l: *mut norman_msg_layers,
    key: *const u8,
    key_len: usize,
    encrypt_uri: bool,
    field: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let l = unsafe { arg_mut(l, "layers") }?;
        let key = unsafe { arg_bytes(key, key_len, "key") }?;
        let key: &[u8; 32] = key
            .try_into()
            .map_err(|_| FfiError::invalid(format!("the AEAD key is {key_len} bytes; it must be 32")))?;
        let field = unsafe { field_name(field, "aead") }?;
        push(l, Aead::new(key).field(&field).encrypt_uri(encrypt_uri));
        Ok(())
    })
}

/// Frees a stack. Whatever took a copy keeps working. NULL is a no-op.
///
/// Ownership: consumes `l`. Threads: any thread, not concurrently with other calls on `l`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_layers_free(l: *mut norman_msg_layers) {
    // SAFETY: the pointer came from norman_msg_layers_new and is not used again.
    guard_value((), || drop(unsafe { take_handle(l) }))
}
