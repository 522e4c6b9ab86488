import { writeFileSync } from 'node:fs';
import { renderAgentConfigDoc, renderHubConfigDoc } from './config-doc.js';

writeFileSync(new URL('../../docs/agent-config.md', import.meta.url), renderAgentConfigDoc());
writeFileSync(new URL('../../docs/hub-config.md', import.meta.url), renderHubConfigDoc());
process.stdout.write('wrote docs/agent-config.md and docs/hub-config.md\n');
