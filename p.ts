import { checkFlow, runFlow } from './src/flows/index.ts';
import { homeFlow, homeRequest, json, SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from './src/flows/fixtures.ts';
const answers: Record<string, any> = { users: json(SEED_USER), orders: json(SEED_ORDERS), products: json(SEED_RECOMMENDATIONS) };
const c = checkFlow(homeFlow()); if (!c.ok) throw 1;
const io = { call: (x: any) => Promise.resolve(answers[x.service]) };
const req = homeRequest();
for (let i = 0; i < 30000; i++) await runFlow(c.flow, req, io);
