/** Writes schemas/recipe.schema.json from the recipe tables (a unit test checks it is up to date). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { recipeJsonSchema } from '../src/quant/recipe';

const file = path.join(__dirname, '../schemas/recipe.schema.json');
fs.writeFileSync(file, JSON.stringify(recipeJsonSchema(), null, 2) + '\n');
console.log(`wrote ${file}`);
