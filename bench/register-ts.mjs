// Lets Node run the bench's TypeScript straight from source (Node 24 strips
// types itself). The project imports `./x.js` in TypeScript sources, as
// NodeNext requires; this hook resolves such a specifier to `./x.ts` when only
// the TypeScript file exists. The service under test is never run this way:
// the bench spawns the compiled dist/main.js.
import { existsSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { fileURLToPath } from 'node:url';

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier.endsWith('.js') && (specifier.startsWith('./') || specifier.startsWith('../')) && context.parentURL?.endsWith('.ts')) {
      const url = new URL(specifier, context.parentURL);
      if (!existsSync(fileURLToPath(url))) {
        const source = new URL(`${url.href.slice(0, -'.js'.length)}.ts`);
        if (existsSync(fileURLToPath(source))) return nextResolve(source.href, context);
      }
    }
    return nextResolve(specifier, context);
  },
});
