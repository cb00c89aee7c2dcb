/**
 * pino JSON logs for every process. Prompt and answer text never reach a log unless the config
 * enables it; keys and authorization headers are redacted wherever they appear.
 */
import { pino, type Logger } from 'pino';

export function createLogger(service: string, options: { level?: string } = {}): Logger {
  return pino({
    name: service,
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    redact: {
      paths: ['*.authorization', '*.Authorization', '*.apiKey', '*.api_key', 'req.headers.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
