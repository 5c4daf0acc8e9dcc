// Lists the fields the page API's configuration types declare
// (web/host/types.ts: OutboxConfig, GuestConfig), as paths: `.` into an
// object, `[]` into each element of an array of objects, `.*` into each
// member of a map; function-typed fields (the page-only `getToken`) are
// left out. Run by `cargo test -p xtask config_types_are_cores` (with the
// TypeScript compiler `cargo xtask install` puts in .tools/npm), which
// holds the lists to outbox-core's config::FIELDS and GUEST_FIELDS.
'use strict';
const path = require('node:path');
const ts = require(process.argv[2]);
const file = path.join(__dirname, '..', 'types.ts');
const program = ts.createProgram([file], { strict: true, target: ts.ScriptTarget.ES2022, noEmit: true });
const checker = program.getTypeChecker();
const source = program.getSourceFile(file);

function paths(type, prefix, out) {
  for (const prop of checker.getPropertiesOfType(type)) {
    const decl = prop.valueDeclaration ?? prop.declarations[0];
    const t = checker.getNonNullableType(checker.getTypeOfSymbolAtLocation(prop, decl));
    if (t.getCallSignatures().length > 0) continue;
    const name = prefix + prop.name;
    out.push(name);
    if (checker.isArrayType(t)) {
      const element = checker.getTypeArguments(t)[0];
      if (element.flags & ts.TypeFlags.Object && !checker.isTupleType(element) && element.getProperties().length > 0 && element.symbol?.name !== 'String') {
        paths(element, name + '[].', out);
      }
    } else if (t.flags & ts.TypeFlags.Object && !(t.symbol?.name === 'Array')) {
      const index = checker.getIndexInfoOfType(t, ts.IndexKind.String);
      if (index) out.push(name + '.*');
      else paths(t, name + '.', out);
    }
  }
  return out;
}

const result = {};
ts.forEachChild(source, (node) => {
  if (ts.isInterfaceDeclaration(node) && ['OutboxConfig', 'GuestConfig'].includes(node.name.text)) {
    result[node.name.text] = paths(checker.getTypeAtLocation(node), '', []).sort();
  }
});
process.stdout.write(JSON.stringify(result));
