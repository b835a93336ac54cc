//! Remote JWK sets over real HTTP on loopback.
