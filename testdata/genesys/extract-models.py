"""Extracts Genesys Platform model shapes for the emulator's shape tests.

Field names, types and enums come from the Python SDK (PureCloudPlatformClientV2)
models; `required` from the JS SDK's index.d.ts (purecloud-platform-client-v2),
where a field without `?` is required. Usage:
  python3 extract-models.py PY_MODELS_DIR INDEX_D_TS Model... > new.json
Fields that an earlier SDK had and the current one dropped were kept by hand
in platform-models.json with "legacy": true (the service still sends them).
"""
import ast, json, re, sys

def snake(name):
    return re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower()

def py_model(models_dir, name):
    src = open(f"{models_dir}/{snake(name)}.py").read()
    tree = ast.parse(src)
    types, attrs = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            t = node.targets[0].attr
            if t == 'swagger_types':
                types = ast.literal_eval(node.value)
            elif t == 'attribute_map':
                attrs = ast.literal_eval(node.value)
    enums, docs = {}, {}
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id == 'allowed_values':
                    enums[fn.name] = ast.literal_eval(node.value)
            ds = ast.get_docstring(fn)
            if ds and fn.name in types and not any(isinstance(d, ast.Attribute) for d in fn.decorator_list):
                lines = [l.strip() for l in ds.splitlines()]
                if len(lines) > 1 and lines[1] and not lines[1].startswith(':'):
                    docs[fn.name] = lines[1]
    out = {}
    for py, js in attrs.items():
        f = {"type": types[py]}
        if py in docs: f["doc"] = docs[py]
        if py in enums: f["enum"] = enums[py]
        out[js] = f
    return out

def ts_required(dts, name):
    m = re.search(r'export interface %s \{(.*?)\n\t\}' % re.escape(name), dts, re.S)
    if not m: return set()
    return set(re.findall(r'^\t\t"([^"]+)":', m.group(1), re.M))

models_dir, dts_path, *names = sys.argv[1:]
dts = open(dts_path).read()
result = {}
for n in sorted(names):
    fields = py_model(models_dir, n)
    for r in ts_required(dts, n):
        if r in fields: fields[r]["required"] = True
    result[n] = fields
print(json.dumps(result, indent=1, ensure_ascii=False))
