
// Appended to the wasm-bindgen glue by `cargo xtask build`: `Outbox.open`
// and `Outbox.guest` load the engine (the default `init()`, which runs
// once) when the app has not called `init()` itself.
for (const name of ['open', 'guest']) {
  const raw = Outbox[name];
  Outbox[name] = async function (config) {
    await __wbg_init();
    return raw.call(this, config);
  };
}
