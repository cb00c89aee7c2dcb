/**
 * The codec endpoint of the Temporal UI (and `temporal --codec-endpoint`): POST /decode and
 * /encode take and return `{payloads: [{metadata: {k: base64}, data: base64}]}` (proto JSON).
 * It decrypts whatever it is sent, so it listens on 127.0.0.1 only and answers browsers only
 * from allowed origins; in a shared deployment put it behind the operators' sign-in.
 */
import express, { type Express, type RequestHandler } from 'express';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ApiError, errorHandler, notFound } from './errors.js';

const payloadsBody = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()).nullish(), data: z.string().nullish() })),
});
type JsonPayload = z.infer<typeof payloadsBody>['payloads'][number];

const fromJson = ({ metadata, data }: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(data ?? '', 'base64'),
});

const toJson = ({ metadata, data }: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(data ?? new Uint8Array()).toString('base64'),
});

/** Loopback pages (the local Temporal UI on any port) unless origins are configured. */
function originAllowed(origin: string, allowOrigins: string[]): boolean {
  if (allowOrigins.length) return allowOrigins.includes(origin);
  return /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(origin);
}

function cors(allowOrigins: string[]): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin && originAllowed(origin, allowOrigins)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'content-type, x-namespace, authorization');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    res.setHeader('Vary', 'Origin');
    if (req.method === 'OPTIONS') return void res.status(204).end();
    next();
  };
}

export function createCodecApp(opts: { codec: PayloadCodec; allowOrigins: string[]; logger: Logger }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(cors(opts.allowOrigins));
  app.use(express.json({ limit: '16mb', type: () => true }));
  const route =
    (direction: 'encode' | 'decode'): RequestHandler =>
    async (req, res) => {
      const body = payloadsBody.safeParse(req.body);
      if (!body.success) throw ApiError.invalid(`expected {payloads: [{metadata, data}]}: ${body.error.issues[0]?.message}`, 'payloads', 'invalid_body');
      let out: Payload[];
      try {
        out = await opts.codec[direction](body.data.payloads.map(fromJson));
      } catch (err) {
        throw new ApiError(400, (err as Error).message, 'invalid_request_error', `${direction}_failed`);
      }
      res.json({ payloads: out.map(toJson) });
    };
  app.post('/decode', route('decode'));
  app.post('/encode', route('encode'));
  app.use(notFound);
  app.use(errorHandler(opts.logger));
  return app;
}
