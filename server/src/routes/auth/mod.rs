//! `auth/*`: the token API (`auth/token/*`, in [`token`]).

pub(super) mod token;
