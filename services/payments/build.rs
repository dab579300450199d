// `sqlx::migrate!` embeds the migrations at compile time, but cargo only
// rebuilds for files it was told about: without this a new migration is left
// out of an incremental build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
