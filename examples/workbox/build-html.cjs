// Copies the page beside the bundle.
require('node:fs').copyFileSync('index.html', 'dist/index.html');
