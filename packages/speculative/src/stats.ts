/** What speculative decoding measured over one generation (`result.stats.speculative`). */
export interface SpeculativeStats {
  /** 'model', 'self-int8', 'self-int4' or 'prompt-lookup'. */
  draft: string;
  /** Verification steps (one target forward each). */
  steps: number;
  /** Steps decoded plainly: the draft had nothing to propose (prompt lookup without a match), or one token was left. */
  plainSteps: number;
  /** Drafted tokens, and how many of them the target accepted. */
  drafted: number;
  accepted: number;
  /** Per draft position i: the fraction of steps that drafted a token at i and accepted it. */
  acceptanceRate: number[];
  /** acceptedCounts[n]: steps that accepted exactly n drafted tokens (gpt-fast's histogram). */
  acceptedCounts: number[];
  /** Mean drafted tokens accepted per verification step; each step emits one more than that. */
  meanAccepted: number;
}

export class SpeculativeStatsRecorder {
  private steps = 0;
  private plain = 0;
  private drafted = 0;
  private accepted = 0;
  private readonly proposedAt: number[];
  private readonly acceptedAt: number[];
  private readonly counts: number[];

  constructor(
    private readonly draft: string,
    k: number,
  ) {
    this.proposedAt = new Array<number>(k).fill(0);
    this.acceptedAt = new Array<number>(k).fill(0);
    this.counts = new Array<number>(k + 1).fill(0);
  }

  step(drafted: number, accepted: number): void {
    this.steps++;
    this.drafted += drafted;
    this.accepted += accepted;
    this.counts[accepted]++;
    for (let i = 0; i < drafted; i++) {
      this.proposedAt[i]++;
      if (i < accepted) this.acceptedAt[i]++;
    }
  }

  plainStep(): void {
    this.plain++;
  }

  snapshot(): SpeculativeStats {
    return {
      draft: this.draft,
      steps: this.steps,
      plainSteps: this.plain,
      drafted: this.drafted,
      accepted: this.accepted,
      acceptanceRate: this.proposedAt.map((n, i) => (n > 0 ? this.acceptedAt[i] / n : 0)),
      acceptedCounts: [...this.counts],
      meanAccepted: this.steps > 0 ? this.accepted / this.steps : 0,
    };
  }
}
