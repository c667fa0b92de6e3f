/**
 * The published declarations (dist/*.d.ts, built by `pretest`) as a consumer sees them:
 * 1. a small consumer program using the main API compiles against dist/index.d.ts under
 *    `strict` (and a misuse does not: the types really constrain);
 * 2. no exported symbol's type mentions `any` (walked with the TypeScript checker through
 *    every property, parameter and return type reachable from lib/index.ts's exports).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const indexDts = join(root, 'dist', 'index.d.ts');

function compile(source: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'ivl-types-'));
  const file = join(dir, 'consumer.ts');
  writeFileSync(file, source.replace(/INDEX/g, indexDts.replace(/\.d\.ts$/, '.js')));
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    typeRoots: [join(root, 'node_modules', '@types')],
    skipLibCheck: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

const consumer = `
import { InternVL, InternVLError, planDeviceMap, type ChatResult, type ModelStats } from 'INDEX';
async function main(): Promise<void> {
  await using model = await InternVL.load('/models/InternVL2-8B', { backend: 'auto', dtype: 'int8', deviceMap: 'auto' });
  const r: ChatResult = await model.chat({ question: 'Describe this image.', images: ['cat.jpg'], generation: { maxNewTokens: 64 } });
  const next: ChatResult = await model.chat({ question: 'And its colour?', history: r.history });
  for await (const piece of model.stream({ question: 'More.', history: next.history })) process.stdout.write(piece);
  const s: ModelStats = model.stats();
  const free: number = s.kvFreeBlocks;
  void free;
  void planDeviceMap;
}
main().catch((e: unknown) => {
  if (e instanceof InternVLError) console.error(e.code);
});
`;

test('a strict consumer compiles against dist/index.d.ts, and a misuse does not', () => {
  expect(compile(consumer)).toEqual([]);
  const bad = compile(`import { InternVL } from 'INDEX';\nvoid InternVL.load('/m', { backend: 'tpu' });\n`);
  expect(bad.join('\n')).toMatch(/'"tpu"' is not assignable/);
});

test('no exported type mentions any', () => {
  const program = ts.createProgram([indexDts], { strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] });
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(indexDts) as ts.SourceFile;
  const mod = checker.getSymbolAtLocation(sf) as ts.Symbol;
  const found: string[] = [];
  const seen = new Set<ts.Type>();
  const isOurs = (s: ts.Symbol | undefined) => !!s?.declarations?.some((d) => d.getSourceFile().fileName.startsWith(join(root, 'dist')));

  function visit(type: ts.Type, where: string, depth: number): void {
    if (depth > 8 || seen.has(type)) return;
    seen.add(type);
    if (type.flags & ts.TypeFlags.Any) {
      found.push(where);
      return;
    }
    if (type.isUnionOrIntersection()) for (const t of type.types) visit(t, where, depth + 1);
    const ref = type as ts.TypeReference;
    if (ref.typeArguments) for (const t of checker.getTypeArguments(ref)) visit(t, `${where}<>`, depth + 1);
    // only our own object types are walked member by member (not Node's or the DOM's)
    if (!isOurs(type.getSymbol() ?? type.aliasSymbol)) return;
    for (const p of checker.getPropertiesOfType(type)) {
      const decl = p.valueDeclaration ?? p.declarations?.[0];
      if (!decl || !isOurs(p)) continue;
      // private/protected members are not the public surface (.d.ts emits them untyped)
      if (ts.getCombinedModifierFlags(decl as ts.Declaration) & ts.ModifierFlags.NonPublicAccessibilityModifier) continue;
      visit(checker.getTypeOfSymbolAtLocation(p, decl), `${where}.${p.getName()}`, depth + 1);
    }
    for (const sig of [...type.getCallSignatures(), ...type.getConstructSignatures()]) {
      for (const param of sig.getParameters()) {
        const decl = param.valueDeclaration ?? param.declarations?.[0];
        if (decl) visit(checker.getTypeOfSymbolAtLocation(param, decl), `${where}(${param.getName()})`, depth + 1);
      }
      visit(sig.getReturnType(), `${where}()`, depth + 1);
    }
  }

  const exports = checker.getExportsOfModule(mod);
  expect(exports.length).toBeGreaterThan(20);
  for (const e of exports) {
    const sym = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
    const decl = sym.valueDeclaration ?? sym.declarations?.[0];
    if (!decl) continue;
    const type = sym.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias) ? checker.getDeclaredTypeOfSymbol(sym) : checker.getTypeOfSymbolAtLocation(sym, decl);
    visit(type, e.getName(), 0);
    if (sym.flags & ts.SymbolFlags.Class) visit(checker.getDeclaredTypeOfSymbol(sym), `${e.getName()}#`, 0);
  }
  expect(found).toEqual([]);
});
