//! Writes `corpus/xds_resource/*` (a type-selector byte, then an encoded resource) from the
//! resources of `examples/demo.yaml`, and `corpus/bootstrap_yaml/*` from the example bootstrap.

use std::path::Path;

use outrider_xds::ResourceType;
use xds_conformance::Snapshot;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshot = Snapshot::from_file(root.join("../examples/demo.yaml"))?;
    let corpus = root.join("corpus/xds_resource");
    std::fs::create_dir_all(&corpus)?;
    let mut written = 0;
    for (selector, kind) in ResourceType::ALL.iter().enumerate() {
        let Some(resources) = snapshot.get(kind.type_url()) else {
            continue;
        };
        for name in resources.names() {
            if let Some(any) = snapshot.resource(kind.type_url(), &name) {
                let mut seed = vec![u8::try_from(selector)?];
                seed.extend_from_slice(&any.value);
                std::fs::write(corpus.join(format!("{kind}-{name}")), seed)?;
                written += 1;
            }
        }
    }
    let bootstraps = root.join("corpus/bootstrap_yaml");
    std::fs::create_dir_all(&bootstraps)?;
    std::fs::copy(
        root.join("../examples/bootstrap-ads.yaml"),
        bootstraps.join("bootstrap-ads.yaml"),
    )?;
    eprintln!("wrote {written} xds_resource seeds and 1 bootstrap seed");
    Ok(())
}
