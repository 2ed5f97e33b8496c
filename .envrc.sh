export CARGO_BUILD_BUILD_DIR=$HOME/.cache/chronotracer/build
export CARGO_TARGET_DIR=/work/wt/i18s/target
export CARGO_INCREMENTAL=0
C="cargo --config profile.dev.package.chrono-contract.codegen-units=232"
