//! Outrider's binary crate as a library: bootstrap loading, the command line and the wiring of a
//! running proxy, so integration tests and fuzz targets use exactly what `outrider` runs.

pub mod bootstrap;
pub mod cli;
pub mod demo;
pub mod diagnose;
pub mod logging;
pub mod migration;
mod model_coverage;
pub mod proxy;
mod stats;
