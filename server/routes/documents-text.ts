/**
 * The text of an uploaded document: plain text and Markdown as UTF-8, PDF through unpdf (pure
 * JavaScript, loaded on the first PDF). Anything else is refused with 415.
 */
import { ApiError } from '../errors.js';

const TEXT_TYPES = /^(text\/(plain|markdown|x-markdown)|application\/(octet-stream|x-markdown))$/;
const TEXT_EXTENSIONS = /\.(txt|text|md|markdown)$/i;

export interface UploadedFile {
  originalname: string;
  mimetype: string;
  buffer: Buffer;
}

const unsupported = (message: string) => new ApiError(415, message, 'invalid_request_error', 'unsupported_file_type', 'file');

export async function uploadedText(file: UploadedFile): Promise<string> {
  const type = file.mimetype.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/pdf' || /\.pdf$/i.test(file.originalname) || file.buffer.subarray(0, 5).toString('latin1') === '%PDF-') return pdfText(file);
  if (!TEXT_TYPES.test(type) && !TEXT_EXTENSIONS.test(file.originalname)) {
    throw unsupported(`Unsupported file type ${type} (${file.originalname}); upload plain text, Markdown or PDF`);
  }
  if (file.buffer.includes(0)) throw unsupported(`${file.originalname} is not a text file`);
  return file.buffer.toString('utf8');
}

async function pdfText(file: UploadedFile): Promise<string> {
  const { extractText, getDocumentProxy } = await import('unpdf');
  try {
    const pdf = await getDocumentProxy(new Uint8Array(file.buffer));
    const { text } = await extractText(pdf, { mergePages: false });
    // One page per paragraph break, so chunking prefers page boundaries.
    return text.join('\n\n');
  } catch (err) {
    throw ApiError.invalid(`${file.originalname} could not be read as PDF: ${(err as Error).message}`, 'file', 'unreadable_pdf');
  }
}
