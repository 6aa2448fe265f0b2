/**
 * `<vlmesh-camera-capture>`: a modal camera viewfinder (getUserMedia) that takes one still.
 * `capture()` opens it and resolves with a PNG Blob, or null when the user cancels; it rejects
 * with `CameraUnavailableError` when there is no camera or permission is refused, so callers can
 * fall back to a file picker. `hasCamera()` tells beforehand whether a camera is listed.
 */
import { css, html, LitElement } from 'lit';
import { VlmeshError } from '../../../shared/errors.ts';
import { baseStyles } from './theme.ts';

/** No camera, or the user (or the page's context) refused access. */
export class CameraUnavailableError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CAMERA_UNAVAILABLE', message, options);
  }
}

/** Whether this browser lists a camera (false without mediaDevices, e.g. over plain http). */
export async function hasCamera(): Promise<boolean> {
  if (!navigator.mediaDevices?.getUserMedia || !navigator.mediaDevices.enumerateDevices) return false;
  try {
    return (await navigator.mediaDevices.enumerateDevices()).some((d) => d.kind === 'videoinput');
  } catch {
    return false;
  }
}

export class CameraCaptureElement extends LitElement {
  static override properties = { large: { type: Boolean, reflect: true } };
  declare large: boolean;
  private stream: MediaStream | null = null;
  private resolve: ((b: Blob | null) => void) | null = null;

  constructor() {
    super();
    this.large = false;
  }

  static override styles = [
    baseStyles,
    css`
      :host {
        display: contents;
      }
      dialog {
        border: none;
        border-radius: 12px;
        padding: 1rem;
        max-width: min(96vw, 48rem);
        width: 100%;
      }
      dialog::backdrop {
        background: rgb(0 0 0 / 0.6);
      }
      video {
        width: 100%;
        max-height: 70vh;
        background: #000;
        border-radius: 8px;
      }
      .row {
        display: flex;
        gap: 0.5rem;
        justify-content: flex-end;
        margin-top: 0.6rem;
      }
      :host([large]) button {
        font-size: 1.5rem;
        min-height: 4rem;
        padding: 0.6rem 1.4rem;
      }
    `,
  ];

  /** Opens the viewfinder; resolves with the still (PNG) or null when cancelled. */
  async capture(): Promise<Blob | null> {
    if (!navigator.mediaDevices?.getUserMedia) throw new CameraUnavailableError('this browser offers no camera access here (it needs https or localhost)');
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    } catch (e) {
      throw new CameraUnavailableError(`no camera available: ${(e as Error).message}`, { cause: e });
    }
    await this.updateComplete;
    const video = this.renderRoot.querySelector('video')!;
    video.srcObject = this.stream;
    const dialog = this.renderRoot.querySelector('dialog')!;
    dialog.showModal();
    await video.play().catch(() => undefined);
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  private finish(blob: Blob | null): void {
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
    const dialog = this.renderRoot.querySelector('dialog');
    if (dialog?.open) dialog.close();
    const r = this.resolve;
    this.resolve = null;
    r?.(blob);
  }

  private snap(): void {
    const video = this.renderRoot.querySelector('video')!;
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth || 640;
    canvas.height = video.videoHeight || 480;
    canvas.getContext('2d')!.drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((b) => this.finish(b), 'image/png');
  }

  private readonly onCancel = (e: Event) => {
    e.preventDefault();
    this.finish(null);
  };

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.finish(null);
  }

  override render() {
    return html`
      <dialog aria-label="Camera" @cancel=${this.onCancel}>
        <video playsinline muted aria-label="Camera preview"></video>
        <div class="row">
          <button type="button" @click=${() => this.finish(null)}>Cancel</button>
          <button type="button" class="primary" @click=${this.snap}>Take photo</button>
        </div>
      </dialog>
    `;
  }
}

customElements.define('vlmesh-camera-capture', CameraCaptureElement);

declare global {
  interface HTMLElementTagNameMap {
    'vlmesh-camera-capture': CameraCaptureElement;
  }
}
