//! Shamir secret sharing over GF(2^8), in Vault's share format.
//!
//! Each byte of the secret is the constant term of a random polynomial of degree
//! `threshold - 1` over GF(2^8) with the AES polynomial (x^8 + x^4 + x^3 + x + 1). A
//! share is the polynomial values at one x for every byte, followed by x itself
//! (33 bytes for a 32-byte secret), as Vault lays them out; x-coordinates are
//! distinct, random and non-zero. Any `threshold` shares give back the secret by
//! Lagrange interpolation at 0; fewer give nothing. Shamir has no integrity check:
//! wrong shares give a wrong secret, which the caller detects when it fails to open
//! the root key.
//!
//! Why our own code: the arithmetic is a few lines, the share layout must be Vault's,
//! and the crates we found use log/exp lookup tables, whose secret-dependent memory
//! accesses are a timing side channel. Multiplication here is branch-free.

use encrypted_attr::SecretBytes;

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, in constant time.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// a^254 = a^-1 (0 for 0), by square-and-multiply with a fixed sequence.
fn inverse(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exponent = 254u8;
    for _ in 0..8 {
        let factor = mul(result, base);
        let take = 0u8.wrapping_sub(exponent & 1);
        result = (factor & take) | (result & !take);
        base = mul(base, base);
        exponent >>= 1;
    }
    result
}

/// Errors of splitting and combining.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ShamirError {
    /// Threshold and share count out of range.
    Parameters(&'static str),
    /// Shares of different lengths, duplicated x-coordinates, too few shares.
    Shares(&'static str),
    /// The random source failed.
    Random,
}

/// Splits `secret` into `shares` shares, any `threshold` of which recover it.
/// `shares == 1` gives the secret itself (Vault's 1-of-1 behaviour).
pub(crate) fn split(secret: &[u8], shares: usize, threshold: usize) -> Result<Vec<SecretBytes>, ShamirError> {
    if shares == 0 || shares > 255 {
        return Err(ShamirError::Parameters("secret_shares must be between 1 and 255"));
    }
    if threshold > shares {
        return Err(ShamirError::Parameters(
            "secret_threshold cannot be larger than secret_shares",
        ));
    }
    if shares == 1 {
        if threshold != 1 {
            return Err(ShamirError::Parameters(
                "secret_threshold must be 1 when secret_shares is 1",
            ));
        }
        return Ok(vec![SecretBytes::copy_from(secret)]);
    }
    if threshold < 2 {
        return Err(ShamirError::Parameters(
            "secret_threshold must be at least 2 when secret_shares is more than 1",
        ));
    }
    // Distinct non-zero x-coordinates in random order.
    let mut xs: Vec<u8> = (1..=255).collect();
    let mut random = vec![0u8; 255 * 2];
    getrandom::fill(&mut random).map_err(|_| ShamirError::Random)?;
    for i in (1..xs.len()).rev() {
        let r = usize::from(u16::from_le_bytes([random[2 * i], random[2 * i + 1]]));
        xs.swap(i, r % (i + 1));
    }
    let mut out: Vec<Vec<u8>> = xs[..shares]
        .iter()
        .map(|_| Vec::with_capacity(secret.len() + 1))
        .collect();
    for &byte in secret {
        let mut random_coefficients = vec![0u8; threshold - 1];
        getrandom::fill(&mut random_coefficients).map_err(|_| ShamirError::Random)?;
        let coefficients = SecretBytes::new(random_coefficients);
        for (share, &x) in out.iter_mut().zip(&xs[..shares]) {
            // Horner: ((c_{t-1} x + c_{t-2}) x + …) x + secret
            let mut y = 0u8;
            for &c in coefficients.expose_secret().iter().rev() {
                y = mul(y, x) ^ c;
            }
            y = mul(y, x) ^ byte;
            share.push(y);
        }
    }
    for (share, &x) in out.iter_mut().zip(&xs[..shares]) {
        share.push(x);
    }
    Ok(out.into_iter().map(SecretBytes::new).collect())
}

/// Recovers the secret from shares (at least the threshold; all the same length).
pub(crate) fn combine(shares: &[SecretBytes]) -> Result<SecretBytes, ShamirError> {
    if shares.len() == 1 {
        return Ok(shares[0].duplicate_secret());
    }
    let len = shares.first().map_or(0, SecretBytes::len);
    if len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::Shares(
            "all shares must have the same length, at least 2 bytes",
        ));
    }
    let xs: Vec<u8> = shares.iter().map(|s| s.expose_secret()[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) {
            return Err(ShamirError::Shares("duplicate share"));
        }
    }
    let mut secret = Vec::with_capacity(len - 1);
    for index in 0..len - 1 {
        // Lagrange interpolation at 0: sum of y_i * prod_{j != i} x_j / (x_j - x_i);
        // subtraction is XOR in GF(2^8).
        let mut value = 0u8;
        for (i, share) in shares.iter().enumerate() {
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, mul(xj, inverse(xj ^ xs[i])));
                }
            }
            value ^= mul(share.expose_secret()[index], basis);
        }
        secret.push(value);
    }
    Ok(SecretBytes::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_arithmetic() {
        // AES field facts: {57} x {83} = {c1}; {53} x {ca} = 1.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x53, 0xca), 0x01);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1, "{a}");
        }
        assert_eq!(inverse(0), 0);
    }

    #[test]
    fn any_threshold_subset_recovers_the_secret() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 5, 3).expect("split");
        assert!(shares.iter().all(|s| s.len() == 33));
        for subset in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let picked: Vec<SecretBytes> = subset.iter().map(|&i| shares[i].duplicate_secret()).collect();
            assert_eq!(combine(&picked).expect("combine").expose_secret(), &secret[..]);
        }
        // Two shares of a 3-threshold give a wrong value, not an error.
        let two: Vec<SecretBytes> = shares[..2].iter().map(SecretBytes::duplicate_secret).collect();
        assert_ne!(combine(&two).expect("combine").expose_secret(), &secret[..]);
        let dup = vec![shares[0].duplicate_secret(), shares[0].duplicate_secret()];
        assert!(combine(&dup).is_err());
    }

    #[test]
    fn parameters_follow_vaults_rules() {
        assert!(split(b"k", 0, 0).is_err());
        assert!(split(b"k", 3, 4).is_err());
        assert!(split(b"k", 3, 1).is_err());
        assert!(split(b"k", 1, 2).is_err());
        assert_eq!(split(b"key", 1, 1).expect("1 of 1")[0].expose_secret(), b"key");
        assert!(split(b"k", 256, 2).is_err());
    }
}
